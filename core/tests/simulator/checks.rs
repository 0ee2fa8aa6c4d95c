//! The invariants, checked after every step, and liveness at the end of a scenario (see the
//! documentation of the simulator).

use super::*;
use fhircast_core::bundle::{Content, UpdateBundle};

impl Sim {
    /// Whether every accepting app is past its transient states: connected, not resynchronising,
    /// not deciding, nothing in flight to it, no HTTP request of its shell under way.
    pub(super) fn settled(&self) -> bool {
        self.nodes.iter().all(|n| match &n.app {
            Some(_) if n.policy.accepts_everything() => {
                let transient = matches!(
                    n.f().status(),
                    SyncStatus::Connecting
                        | SyncStatus::Disconnected { .. }
                        | SyncStatus::OutOfSync {
                            reason: OutOfSyncReason::Deciding { .. }
                                | OutOfSyncReason::VersionGap { .. }
                                | OutOfSyncReason::ResyncFailed { .. }
                        }
                );
                let quiescent = n.sock.is_some_and(|s| self.sockets[s].down_in_flight.is_empty());
                !transient
                    && n.delivered.is_empty()
                    && n.gets_in_flight.is_empty()
                    && n.http_in_flight == 0
                    && quiescent
                    && self.connected(n)
            }
            _ => true,
        })
    }

    /// Whether the node's shell has a socket the Hub holds a subscription for.
    pub(super) fn connected(&self, n: &Node) -> bool {
        n.sock.is_some_and(|s| {
            let s = &self.sockets[s];
            !s.broken && s.hub_attached && self.hub.has_endpoint(&s.token)
        })
    }

    /// Check (b) after an input that may have changed what the follower shows: a context
    /// change applied (what it shows now comes from `cause`) is no older than the last one.
    pub(super) fn after_change(&mut self, node: usize, before: Shown, cause: Option<&Event>) -> Res {
        let n = &mut self.nodes[node];
        if n.app.is_none() || n.shown() == before {
            return Ok(());
        }
        let Some(ev) = cause.filter(|e| is_context_change(e.name.kind())) else { return Ok(()) };
        if n.applied_ts.is_some_and(|t| ev.timestamp < t) {
            return fail(
                "order (b)",
                format!(
                    "{} applied {} (timestamp {}) after a context change stamped {}",
                    n.name,
                    ev_str(ev),
                    ev.timestamp,
                    n.applied_ts.expect("checked")
                ),
            );
        }
        n.applied_ts = Some(ev.timestamp);
        Ok(())
    }

    /// Sync safety and check (a), after every step (see the documentation of the simulator).
    pub(super) fn check(&mut self) -> Res {
        for i in 0..self.nodes.len() {
            let n = &self.nodes[i];
            if n.app.is_none() {
                continue;
            }
            let shown = n.anchor();
            if let Some(a) = &shown {
                if !self.ever_opened.contains(a) {
                    return fail("phantom (a)", format!("{} shows {a}, which the hub never had open", n.name));
                }
            }
            if !n.in_sync() {
                continue;
            }
            self.stats.in_sync_checks += 1;
            let view_now = &n.views.last().expect("a view from the start").1;
            if shown == *view_now {
                self.check_content(i)?;
                continue;
            }
            let undetected_break = self.sockets.iter().any(|s| s.node == i && s.broken && !s.node_knows_end);
            if undetected_break {
                continue;
            }
            let mut oldest: Option<usize> = n.gets_in_flight.iter().copied().min();
            let mut replayed: &[Option<ResourceKey>] = &[];
            if let Some(s) = n.sock {
                let s = &self.sockets[s];
                if !s.broken {
                    if let Some(&st) = s.down_in_flight.front() {
                        if n.snapshot_step.is_some_and(|snap| st < snap) {
                            continue; // older news over a newer snapshot, still arriving
                        }
                        oldest = Some(oldest.map_or(st, |o| o.min(st)));
                    }
                    if s.replay_in_flight > 0 {
                        replayed = &s.replayed;
                    }
                }
            }
            let mut allowed = views_since(&n.views, oldest.unwrap_or(self.step + 1));
            for r in replayed {
                if !allowed.contains(r) {
                    allowed.push(r.clone());
                }
            }
            if !allowed.contains(&shown) {
                let in_flight = match oldest {
                    Some(s) => format!("the oldest news in flight to it is from step #{s}"),
                    None => "nothing is in flight to it and no break is undetected".into(),
                };
                let hub_now = self.hub_current();
                let sig = format!("{:?} app shows {}, its view {}", n.kind, type_of(&shown), type_of(view_now));
                return fail_sig(
                    "sync safety",
                    sig,
                    format!(
                        "{} ({:?}) is InSync showing {:?} but its view of the hub is {:?} (the hub's current \
                         anchor: {:?}), and {in_flight}; its views since: {:?}",
                        n.name,
                        n.kind,
                        shown.map(|k| k.to_string()),
                        view_now.as_ref().map(|k| k.to_string()),
                        hub_now.as_ref().map(|k| k.to_string()),
                        allowed.iter().map(|a| a.as_ref().map(|k| k.to_string())).collect::<Vec<_>>()
                    ),
                );
            }
            self.stats.in_sync_lagging += 1;
        }
        Ok(())
    }

    /// Content sharing (issue 15): an in-sync follower that shows its view, with nothing in
    /// flight to it and no break it has not been told of, and that keeps content for the anchor
    /// it shows, keeps the Hub's content of that anchor: its Bundles, applied in order, give
    /// exactly what the Hub holds (req 105-117). What the app would list as
    /// `currentContext().resources` is never silently wrong.
    fn check_content(&mut self, i: usize) -> Res {
        let n = &self.nodes[i];
        let Some(anchor) = n.f().current().map(|c| c.anchor.clone()) else { return Ok(()) };
        let Some(bundles) = n.f().shared_of(&anchor) else { return Ok(()) };
        if !n.gets_in_flight.is_empty() {
            return Ok(());
        }
        match n.sock.map(|s| &self.sockets[s]) {
            Some(s) if !s.broken && s.down_in_flight.is_empty() && s.replay_in_flight == 0 => {}
            _ => return Ok(()),
        }
        let mut kept = Content::default();
        for b in bundles {
            if b.get().contains("\"collection\"") {
                kept = Content::from_collection_bundle(b.get()).expect("a snapshot's content Bundle reads");
            } else {
                kept.apply(&UpdateBundle::parse(b.get(), usize::MAX).expect("an update the hub sent parses"));
            }
        }
        let hub = self.hub.state().content_of(&anchor).cloned().unwrap_or_default();
        if !hub.is_empty() {
            self.stats.content_checks += 1;
        }
        if kept != hub {
            return fail(
                "content",
                format!(
                    "{} is InSync showing {anchor} with content {} but the hub holds {}",
                    n.name,
                    kept.collection_bundle_json(),
                    hub.collection_bundle_json()
                ),
            );
        }
        Ok(())
    }

    pub(super) fn check_liveness(&mut self) -> Res {
        log!(self, "--- end of the quiet period: liveness ---");
        self.end_step();
        for n in &self.nodes {
            if n.app.is_none() || !n.policy.accepts_everything() {
                continue;
            }
            let connected = self.connected(n);
            let status = n.f().status();
            let shown = n.anchor();
            let view = &n.views.last().expect("a view from the start").1;
            let excused = !self.clean
                && matches!(
                    status,
                    SyncStatus::OutOfSync {
                        reason: OutOfSyncReason::SyncError { .. } | OutOfSyncReason::OwnEventNotFollowed { .. }
                    }
                );
            if !connected || shown != *view || (*status != SyncStatus::InSync && !excused) {
                let sig = if !connected {
                    "not connected".to_owned()
                } else if shown != *view {
                    format!("{:?} app shows {}, its view {}", n.kind, type_of(&shown), type_of(view))
                } else {
                    status_str(status).split(['(', ' ']).take(2).collect::<Vec<_>>().join(" ")
                };
                return fail_sig(
                    "liveness (c)",
                    sig,
                    format!(
                        "after the quiet period {} ({:?}, {:?}) is {}, shows {:?}; its view of the hub is {:?} (the \
                         hub's current anchor: {:?})",
                        n.name,
                        n.policy,
                        n.kind,
                        if connected { status_str(status) } else { format!("not connected ({})", status_str(status)) },
                        shown.map(|k| k.to_string()),
                        view.as_ref().map(|k| k.to_string()),
                        self.hub_current().as_ref().map(|k| k.to_string())
                    ),
                );
            }
        }
        Ok(())
    }
}

/// `{ V(s) : s0 - 1 <= s <= now }` of one app.
fn views_since(views: &[(usize, Option<ResourceKey>)], s0: usize) -> Vec<Option<ResourceKey>> {
    let mut out = Vec::new();
    let first = views.iter().rposition(|(s, _)| *s < s0).unwrap_or(0);
    for (_, a) in &views[first..] {
        if !out.contains(a) {
            out.push(a.clone());
        }
    }
    out
}
