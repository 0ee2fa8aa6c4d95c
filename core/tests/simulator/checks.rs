//! The invariants, checked after every step, and liveness at the end of a scenario (see the
//! documentation of the simulator).

use super::*;

impl Sim {
    /// Whether every accepting app is past its transient states: connected, not resynchronising,
    /// not deciding.
    pub(super) fn settled(&self) -> bool {
        self.nodes.iter().all(|n| match &n.app {
            Some(a) if n.policy.accepts_everything() => {
                let transient = matches!(
                    a.f.status(),
                    SyncStatus::Connecting
                        | SyncStatus::Disconnected { .. }
                        | SyncStatus::OutOfSync {
                            reason: OutOfSyncReason::Deciding { .. }
                                | OutOfSyncReason::VersionGap { .. }
                                | OutOfSyncReason::ResyncFailed { .. }
                        }
                );
                let quiescent = match n.conn {
                    Conn::Sock(s) => self.sockets[s].down_in_flight.is_empty(),
                    _ => false,
                };
                !transient && n.delivered.is_empty() && n.gets_in_flight.is_empty() && quiescent && self.connected(n)
            }
            _ => true,
        })
    }

    /// Whether the node's shell has a socket the Hub holds a subscription for.
    pub(super) fn connected(&self, n: &Node) -> bool {
        match n.conn {
            Conn::Sock(s) => {
                let s = &self.sockets[s];
                !s.broken && s.hub_attached && self.hub.has_endpoint(&s.token)
            }
            _ => false,
        }
    }

    /// Check (b) after an input that may have changed what the follower shows: a context
    /// change applied (what it shows now comes from `cause`) is no older than the last one.
    pub(super) fn after_change(&mut self, node: usize, before: Shown, cause: Option<&Event>) -> Res {
        let n = &mut self.nodes[node];
        if n.app.as_ref().and_then(App::shown) == before {
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
        let hub_now = self.hub_current();
        for i in 0..self.nodes.len() {
            let n = &self.nodes[i];
            let Some(app) = &n.app else { continue };
            let shown = app.f.current().map(|c| c.anchor.clone());
            if let Some(a) = &shown {
                if !self.ever_opened.contains(a) {
                    return fail("phantom (a)", format!("{} shows {a}, which the hub never had open", n.name));
                }
            }
            if !app.in_sync() {
                continue;
            }
            self.stats.in_sync_checks += 1;
            if shown == hub_now {
                continue;
            }
            let undetected_break = self.sockets.iter().any(|s| s.node == i && s.broken && !s.node_knows_end);
            if undetected_break {
                continue;
            }
            let mut oldest: Option<usize> = n.gets_in_flight.iter().copied().min();
            let mut replayed: &[Option<ResourceKey>] = &[];
            if let Conn::Sock(s) = n.conn {
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
            let mut allowed = self.hub_anchors_since(oldest.unwrap_or(self.step + 1));
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
                return fail(
                    "sync safety",
                    format!(
                        "{} is InSync showing {:?} but the hub's current anchor is {:?}, and {in_flight}; \
                         anchors the hub held since: {:?}",
                        n.name,
                        shown.map(|k| k.to_string()),
                        hub_now.as_ref().map(|k| k.to_string()),
                        allowed.iter().map(|a| a.as_ref().map(|k| k.to_string())).collect::<Vec<_>>()
                    ),
                );
            }
            self.stats.in_sync_lagging += 1;
        }
        Ok(())
    }

    /// `{ H(s) : s0 - 1 <= s <= now }`.
    fn hub_anchors_since(&self, s0: usize) -> Vec<Option<ResourceKey>> {
        let mut out = Vec::new();
        let first = self.hub_history.iter().rposition(|(s, _)| *s < s0).unwrap_or(0);
        for (_, a) in &self.hub_history[first..] {
            if !out.contains(a) {
                out.push(a.clone());
            }
        }
        out
    }

    pub(super) fn check_liveness(&mut self) -> Res {
        log!(self, "--- end of the quiet period: liveness ---");
        self.end_step();
        let hub_now = self.hub_current();
        for n in &self.nodes {
            let Some(app) = &n.app else { continue };
            if !n.policy.accepts_everything() {
                continue;
            }
            let connected = self.connected(n);
            let status = app.f.status();
            let shown = app.f.current().map(|c| c.anchor.clone());
            let excused = !self.clean
                && matches!(
                    status,
                    SyncStatus::OutOfSync {
                        reason: OutOfSyncReason::SyncError { .. } | OutOfSyncReason::OwnEventNotFollowed { .. }
                    }
                );
            if !connected || shown != hub_now || (*status != SyncStatus::InSync && !excused) {
                return fail(
                    "liveness (c)",
                    format!(
                        "after the quiet period {} ({:?}) is {}, shows {:?}; the hub's current anchor is {:?}",
                        n.name,
                        n.policy,
                        if connected { status_str(status) } else { format!("not connected ({})", status_str(status)) },
                        shown.map(|k| k.to_string()),
                        hub_now.as_ref().map(|k| k.to_string())
                    ),
                );
            }
        }
        Ok(())
    }
}
