//! `told` and `own`: every failure to follow reaches the other subscribers as a SyncError, and
//! the app whose event it was recognises it (see the documentation of the simulator).
//!
//! The simulator mirrors what the Hub awaits on each socket ([`Owed`]) from what it sends and
//! what reaches it, so it knows, independently of the Hub, when a subscriber failed: a non-2xx
//! answer, a SyncError POSTed after a 202, an abnormal close, an ack timeout ([`Incident`]).
//! After the step, the Hub's output of that step must hold the SyncErrors.

use fhircast_core::hub::{EventAccepted, EventRejected};
use fhircast_core::syncerror::SyncErrorDetails;
use fhircast_core::wire::Ack;

use super::*;

/// The envelope of a notification, read cheaply (no context).
#[derive(serde::Deserialize)]
struct Head {
    id: String,
    event: HeadEvent,
}

#[derive(serde::Deserialize)]
struct HeadEvent {
    #[serde(rename = "hub.event")]
    name: String,
}

fn sync_error_of(text: &str) -> Option<(String, SyncErrorDetails)> {
    let ev = Event::parse_envelope(text).ok()?;
    let d = SyncErrorDetails::from_context(&ev.context).ok()?;
    Some((ev.id, d))
}

impl IncidentKind {
    /// The failure kind when the others are not told.
    fn kind(self) -> &'static str {
        match self {
            IncidentKind::Answered(_) => "told (refused/failed)",
            IncidentKind::PostedSyncError => "told (202 then refused)",
            IncidentKind::Lost => "told (lost connection)",
            IncidentKind::Timeout => "told (ack timeout)",
            IncidentKind::TimeoutOnSyncError => "told (ack timeout on a SyncError)",
        }
    }
}

impl Sim {
    /// The Hub sends `text` on `sock` (called for every `Send` with `told`).
    pub(super) fn sent(&mut self, sock: usize, text: Arc<str>) -> Res {
        if text.contains("\"hub.mode\"") {
            if text.contains("\"denied\"") {
                self.step_denials.push((sock, text.to_string()));
            }
            return Ok(());
        }
        let Ok(h) = serde_json::from_str::<Head>(&text) else { return Ok(()) };
        let sync_error = h.event.name == "SyncError";
        self.sockets[sock].owed.push(Owed { id: h.id.clone(), sync_error, sent: self.now });
        if sync_error {
            let Some((id, d)) = sync_error_of(&text) else {
                return fail("protocol", format!("the hub sent an unreadable SyncError: {text}"));
            };
            let key = (d.subscriber_name.clone(), d.event_id.clone());
            match self.sync_error_ids.get(&id) {
                Some(k) if *k != key && self.has(Features::TOLD) => {
                    return fail(
                        "told (distinct ids)",
                        format!(
                            "the hub sent SyncError {id} about {} {} of {}, but a SyncError with that id was about \
                             {} of {}: a follower takes the second for a duplicate",
                            d.event_name, key.1, key.0, k.1, k.0
                        ),
                    );
                }
                Some(_) => {}
                None => {
                    self.sync_error_ids.insert(id.clone(), key);
                }
            }
            self.step_sync_errors.push((sock, id, d));
        } else if let Some(p) = &self.routing_post {
            if h.id != *p {
                let sources = self.derived_from.entry(h.id).or_default();
                if !sources.contains(p) {
                    sources.push(p.clone());
                }
            }
        }
        Ok(())
    }

    /// The events a SyncError about `id` may name: it, or the event it was derived from.
    fn about(&self, ids: Vec<String>) -> Vec<String> {
        let mut out = ids.clone();
        for id in ids {
            out.extend(self.derived_from.get(&id).into_iter().flatten().cloned());
        }
        out
    }

    /// An answer reaches the Hub on `sock`.
    pub(super) fn answer_reaches_hub(&mut self, sock: usize, text: &str) {
        let Ok(ack) = Ack::parse(text) else { return };
        let s = &mut self.sockets[sock];
        let Some(i) = s.owed.iter().position(|o| o.id == ack.id) else { return };
        let o = s.owed.remove(i);
        if ack.is_success() || o.sync_error {
            return;
        }
        let node = s.node;
        let events = self.about(vec![o.id]);
        self.incidents.push(Incident { node, sock: Some(sock), what: IncidentKind::Answered(ack.status), events });
    }

    /// The Hub learns that `sock` closed abnormally.
    pub(super) fn lost(&mut self, sock: usize) {
        if !self.has(Features::TOLD) {
            return;
        }
        let s = &mut self.sockets[sock];
        s.owed.clear();
        let node = s.node;
        self.incidents.push(Incident { node, sock: Some(sock), what: IncidentKind::Lost, events: Vec::new() });
    }

    /// Before the Hub's deadline runs: the sockets with answers overdue, and the overdue
    /// notifications that are not SyncErrors.
    pub(super) fn overdue(&self) -> Vec<(usize, Vec<String>)> {
        if !self.has(Features::TOLD) {
            return Vec::new();
        }
        let t = self.hub_config.ack_timeout;
        let mut out = Vec::new();
        for (i, s) in self.sockets.iter().enumerate() {
            if !s.hub_attached || !s.owed.iter().any(|o| o.sent.add(t) <= self.now) {
                continue;
            }
            let ids = s.owed.iter().filter(|o| o.sent.add(t) <= self.now && !o.sync_error).map(|o| o.id.clone());
            out.push((i, ids.collect()));
        }
        out
    }

    /// After the Hub's deadline ran: the sockets with overdue answers it dropped, unless their
    /// lease ran out (a denial saying so).
    pub(super) fn timeouts_noticed(&mut self, overdue: Vec<(usize, Vec<String>)>) {
        for (sock, ids) in overdue {
            if self.hub.has_endpoint(&self.sockets[sock].token) {
                continue;
            }
            if self.step_denials.iter().any(|(s, t)| *s == sock && t.contains("lease expired")) {
                continue;
            }
            let what = if ids.is_empty() { IncidentKind::TimeoutOnSyncError } else { IncidentKind::Timeout };
            let events = self.about(ids);
            let node = self.sockets[sock].node;
            self.incidents.push(Incident { node, sock: Some(sock), what, events });
        }
    }

    /// A SyncError a follower POSTed (after a 202) reached the Hub: it must be accepted, and
    /// broadcast (checked after the step).
    pub(super) fn posted_sync_error(
        &mut self,
        node: usize,
        context: &[ContextEntry],
        result: &Result<EventAccepted, EventRejected>,
    ) -> Res {
        if !self.has(Features::TOLD) {
            return Ok(());
        }
        let name = self.nodes[node].name.clone();
        let Ok(d) = SyncErrorDetails::from_context(context) else {
            return fail("protocol", format!("{name} posted an unreadable SyncError"));
        };
        match result {
            Err(e) => fail(
                "told (202 then refused)",
                format!(
                    "the hub refused {name}'s SyncError about {} {} ({}: {e}), so no other app is told",
                    d.event_name,
                    d.event_id,
                    e.http_status()
                ),
            ),
            Ok(a) if a.duplicate => fail(
                "told (202 then refused)",
                format!(
                    "the hub took {name}'s SyncError about {} {} (id {}) for a duplicate of an earlier request, so \
                     no other app is told",
                    d.event_name, d.event_id, a.id
                ),
            ),
            Ok(_) => {
                // Relayed as about the event it was derived from, if the hub derived it.
                let events = self.about(vec![d.event_id]);
                self.incidents.push(Incident { node, sock: None, what: IncidentKind::PostedSyncError, events });
                Ok(())
            }
        }
    }

    /// After a step: each incident reached every other subscription the Hub holds as connected.
    pub(super) fn check_told(&mut self) -> Res {
        if !self.has(Features::TOLD) {
            return Ok(());
        }
        let incidents = std::mem::take(&mut self.incidents);
        let sent = std::mem::take(&mut self.step_sync_errors);
        let dropped = std::mem::take(&mut self.step_dropped);
        self.step_denials.clear();
        if incidents.is_empty() {
            return Ok(());
        }
        let connected: Vec<usize> =
            self.hub.connected_endpoints().filter_map(|t| self.token_sock.get(t).copied()).collect();
        // Before any context change there is no event a SyncError could name (its eventid and
        // eventname codings are required): a subscriber that leaves then is not reported, and
        // no app can show anything wrong.
        let nothing_yet = self.hub.state().current().is_none() && self.hub.state().last_change().is_none();
        for inc in &incidents {
            if nothing_yet && matches!(inc.what, IncidentKind::Lost | IncidentKind::TimeoutOnSyncError) {
                continue;
            }
            self.stats.incidents += 1;
            let f = &self.nodes[inc.node].name;
            for &r in &connected {
                let other = match inc.sock {
                    Some(s) => s != r,
                    None => self.sockets[r].node != inc.node,
                };
                if !other {
                    continue;
                }
                self.stats.told_checked += 1;
                // An event the hub derived names the event it was derived from: the current
                // context's open for a view, the change that emptied it for a close (ARCHITECTURE:
                // views), which the simulator does not model. A SyncError naming any accepted
                // event of an app is taken as about it; the `own` check then requires that app
                // to recognise it as its own.
                let loose = inc.events.iter().any(|e| e.starts_with("h-"));
                let told = sent.iter().any(|(s, _, d)| {
                    *s == r
                        && d.subscriber_name == *f
                        && (inc.events.is_empty()
                            || inc.events.contains(&d.event_id)
                            || (loose && self.published.contains_key(&d.event_id)))
                });
                if !told {
                    let to = &self.nodes[self.sockets[r].node].name;
                    let what = match inc.what {
                        IncidentKind::Answered(s) => format!("{f} answered {s}"),
                        IncidentKind::PostedSyncError => format!("{f} refused after a 202 (its SyncError)"),
                        IncidentKind::Lost => format!("{f} lost its connection (1006)"),
                        IncidentKind::Timeout => format!("{f} did not answer in time"),
                        IncidentKind::TimeoutOnSyncError => format!("{f} did not answer a SyncError in time"),
                    };
                    let got: Vec<String> = sent
                        .iter()
                        .filter(|(s, _, _)| *s == r)
                        .map(|(_, id, d)| format!("{id} about {} of {:?}", d.event_id, d.subscriber_name))
                        .collect();
                    return fail(
                        inc.what.kind(),
                        format!(
                            "{what} (about {}), but {to} (socket {}), connected, got no SyncError saying so; it got: \
                             {got:?} (the hub's current anchor: {:?}){}",
                            if inc.events.is_empty() { "any event".to_owned() } else { inc.events.join(" or ") },
                            self.sockets[r].token,
                            self.hub_current().map(|k| k.to_string()),
                            if dropped.contains(&r) { " (one was dropped on its way)" } else { "" }
                        ),
                    );
                }
            }
        }
        Ok(())
    }

    /// A SyncError was delivered to `node`'s follower on its current socket: its app must be
    /// told, and recognise its own events.
    pub(super) fn sync_error_delivered(&mut self, node: usize, text: &str) -> Res {
        let Some((id, d)) = sync_error_of(text) else { return Ok(()) };
        let name = self.nodes[node].name.clone();
        let Some(notice) = self.notices.iter().find(|n| n.id == id) else {
            if !self.has(Features::TOLD) {
                return Ok(());
            }
            return fail(
                "told (app not told)",
                format!(
                    "{name} received SyncError {id} about {} {} of {} but did not tell its app (no Output::SyncError)",
                    d.event_name, d.event_id, d.subscriber_name
                ),
            );
        };
        if self.has(Features::TOLD)
            && (notice.details.event_id != d.event_id || notice.details.subscriber_name != d.subscriber_name)
        {
            return fail(
                "told (app not told)",
                format!("{name} told its app of SyncError {id} with other details: {:?} vs {:?}", notice.details, d),
            );
        }
        if !self.has(Features::OWN) {
            return Ok(());
        }
        let source = self.published.get(&d.event_id).or_else(|| {
            let s = self.derived_from.get(&d.event_id)?.first()?;
            self.published.get(s)
        });
        let Some(&(publisher, gen, accepted)) = source else { return Ok(()) };
        let n = &self.nodes[node];
        if publisher != node || gen != n.gen || self.now.since(accepted) > OWN_WINDOW {
            return Ok(());
        }
        if n.post_failed.contains(&d.event_id) {
            return Ok(()); // its follower was told the POST failed (a lost answer)
        }
        self.stats.own_checked += 1;
        if !notice.own_event {
            let derived = if self.published.contains_key(&d.event_id) {
                String::new()
            } else {
                format!(" (derived by the hub from {}'s {})", name, self.derived_from[&d.event_id][0])
            };
            return fail(
                "own",
                format!(
                    "{name} got SyncError {id} about {} {}{derived}, its own event (accepted by the hub {:.1} s ago), \
                     but own_event is false",
                    d.event_name,
                    d.event_id,
                    self.now.since(accepted).as_secs_f64()
                ),
            );
        }
        Ok(())
    }
}
