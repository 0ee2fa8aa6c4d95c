//! The scenario, the clock and the main loop: one step at a time, to the earliest of the
//! next delivery, the Hub's deadline, a subscriber's deadline and the next scripted action.

use super::*;

/// Clocks that are not merely skewed (`bogus-clock`): hours or years off, or in 2200.
const BOGUS_OFFSETS_S: [i64; 5] = [3 * 3600, -5 * 3600, 2 * 365 * 86_400, -10 * 365 * 86_400, 0];
/// 2200-01-01T00:00:00Z.
const YEAR_2200_S: i64 = 7_258_118_400;

impl Sim {
    pub(super) fn new(seed: u64, opts: Options) -> Self {
        let mut rng = Rng(seed ^ 0x5EED_F00D_CAFE_0001);
        let enabled = opts.features;
        let mut active = Features(enabled.0 & Features::CHECKS);
        for (_, bit, _) in FEATURES {
            if bit & Features::CHECKS == 0 && enabled.has(*bit) && rng.chance(0.5) {
                active.0 |= bit;
            }
        }
        let clean = rng.chance(0.15);
        if clean {
            active.0 &= !(Features::REFUSERS | Features::RESTARTS);
        }
        let has = |b| active.has(b);
        let n = if has(Features::REFUSERS) { 3 + rng.below(3) as usize } else { 2 + rng.below(4) as usize };
        let patients = if has(Features::MAX_OPEN) { PATIENTS.len() } else { 4 } as u64;
        let mut policies = Vec::new();
        for i in 0..n {
            policies.push(if i == 0 {
                Policy::Accept
            } else if clean {
                rng.pick(&[Policy::Accept, Policy::SlowAccept])
            } else {
                match rng.below(12) {
                    0..=2 => Policy::Accept,
                    3..=4 => Policy::SlowAccept,
                    5..=6 => Policy::Dislike(Refusal::Conflict),
                    7..=8 => Policy::DeferThenDecide,
                    9..=10 => Policy::NeverDecide,
                    _ => Policy::Zombie,
                }
            });
        }
        // `refusers`: two or three apps dislike the same anchors, each refusing its own way.
        let shared_dislikes = vec![
            PATIENTS[rng.below(patients) as usize],
            REPORTS[rng.below(3) as usize],
            STUDIES[rng.below(4) as usize],
        ];
        let mut refusers = Vec::new();
        if has(Features::REFUSERS) {
            let k = 2 + rng.below((n as u64 - 2).min(2)) as usize;
            while refusers.len() < k {
                let i = 1 + rng.below(n as u64 - 1) as usize;
                if !refusers.contains(&i) {
                    refusers.push(i);
                }
            }
            for &i in &refusers {
                policies[i] = match rng.below(5) {
                    0 => Policy::Dislike(Refusal::Conflict),
                    1 => Policy::Dislike(Refusal::Failure),
                    2 => Policy::Dislike(Refusal::DeferThenRefuse),
                    3 => Policy::Dislike(Refusal::Undecided),
                    _ => Policy::Zombie,
                };
            }
        }
        let bogus = has(Features::BOGUS_CLOCK).then(|| rng.below(n as u64) as usize);
        let mut nodes = Vec::new();
        for (i, &policy) in policies.iter().enumerate() {
            let kind = if has(Features::SUBSETS) {
                match rng.below(8) {
                    0 => AppKind::Full,
                    1..=2 => AppKind::Patient,
                    3 => AppKind::Study,
                    4..=5 => AppKind::PatientStudy,
                    _ => AppKind::Report,
                }
            } else {
                AppKind::Full
            };
            let (home, logout) = (rng.chance(0.5), rng.chance(0.5));
            let events = events_of(kind, home, logout);
            let max_skew: i64 = if has(Features::SKEW) { 30_000_000_000 } else { 2_000_000_000 };
            let mut skew_ns = if rng.chance(0.5) { rng.below(2 * max_skew as u64) as i64 - max_skew } else { 0 };
            if bogus == Some(i) {
                let off = rng.pick(&BOGUS_OFFSETS_S);
                skew_ns = if off == 0 {
                    (YEAR_2200_S - t0().unix_nanos() / 1_000_000_000) * 1_000_000_000
                } else {
                    off * 1_000_000_000
                };
            }
            let lease = if has(Features::RENEWALS) && rng.chance(0.5) {
                Some(20 + rng.below(70))
            } else {
                rng.chance(0.2).then(|| 30 + rng.below(120))
            };
            let name = format!("n{i}");
            let lie = match opts.lie {
                Lie::InSyncAfterRefusing if matches!(policy, Policy::Dislike(_) | Policy::DeferThenDecide) => {
                    Lie::InSyncAfterRefusing
                }
                Lie::UnfilteredSnapshot => Lie::UnfilteredSnapshot,
                _ => Lie::None,
            };
            let app = (policy != Policy::Zombie).then_some(App { lie, raw_snapshot: None });
            let sub = subscriber(&name, &events, lease, 0, rng.next());
            let disliked = if refusers.contains(&i) {
                shared_dislikes.clone()
            } else {
                vec![
                    PATIENTS[rng.below(patients) as usize],
                    REPORTS[rng.below(3) as usize],
                    STUDIES[rng.below(4) as usize],
                ]
            };
            let refuses_updates = has(Features::CONTENT) && matches!(policy, Policy::Dislike(_)) && rng.chance(0.5);
            nodes.push(Node {
                name,
                policy,
                kind,
                events,
                sub,
                app,
                skew_ns,
                lease,
                sock: None,
                next_id: 0,
                disliked,
                refuses_updates,
                gen: 0,
                delivered: BTreeMap::new(),
                post_failed: BTreeSet::new(),
                gets_in_flight: Vec::new(),
                http_in_flight: 0,
                applied_ts: None,
                snapshot_step: None,
                views: vec![(0, None)],
            });
        }
        let break_chance = if clean { 0.0 } else { rng.pick(&[0.0, 0.05, 0.15, 0.3]) };
        let loss_chance = if clean { 0.0 } else { rng.pick(&[0.0, 0.02, 0.06]) };
        let mut hub_config = HubConfig::default();
        if has(Features::MAX_OPEN) {
            hub_config.max_open_contexts = 4 + rng.below(5) as usize;
        }
        let mut sim = Sim {
            opts,
            active,
            rng,
            now: t0(),
            step: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            hub: Topic::new("T1", "h", hub_config.clone()),
            store: MemoryStore::default(),
            hub_config,
            nodes,
            sockets: Vec::new(),
            token_sock: BTreeMap::new(),
            next_token: 0,
            hub_history: vec![(0, None)],
            view_key: (None, 0),
            ever_opened: BTreeSet::new(),
            quiet: false,
            clean,
            replaying: None,
            routing_post: None,
            derived_from: HashMap::new(),
            published: HashMap::new(),
            step_sync_errors: Vec::new(),
            step_denials: Vec::new(),
            step_dropped: Vec::new(),
            incidents: Vec::new(),
            sync_error_ids: HashMap::new(),
            notices: Vec::new(),
            break_chance,
            loss_chance,
            trace: VecDeque::new(),
            line: String::new(),
            stats: Stats::default(),
        };
        if sim.opts.trace != Trace::Off {
            let desc: Vec<String> = sim
                .nodes
                .iter()
                .map(|n| {
                    format!(
                        "{}={:?}/{:?}{}{}{} [{}]",
                        n.name,
                        n.policy,
                        n.kind,
                        if n.skew_ns != 0 { format!(" skew={}ms", n.skew_ns / 1_000_000) } else { String::new() },
                        n.lease.map(|l| format!(" lease={l}s")).unwrap_or_default(),
                        if matches!(n.policy, Policy::Dislike(_)) {
                            format!(" dislikes={:?}", n.disliked)
                        } else {
                            String::new()
                        },
                        n.events.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(",")
                    )
                })
                .collect();
            log!(
                sim,
                "scenario seed={seed} features=[{}] clean={clean} breaks={break_chance} http-loss={loss_chance} \
                 max-open={}:\n        {}",
                sim.active.names(),
                sim.hub_config.max_open_contexts,
                desc.join("\n        ")
            );
            sim.end_step();
        }
        for i in 0..sim.nodes.len() {
            let d = sim.rng.ms(0, 500);
            sim.schedule(d, Ev::Start { node: i, gen: 0 });
        }
        let d = sim.rng.ms(500, 2000);
        sim.schedule(d, Ev::Act);
        sim
    }

    pub(super) fn has(&self, bit: u32) -> bool {
        self.active.has(bit)
    }

    // --- bookkeeping -------------------------------------------------------------------------

    pub(super) fn schedule(&mut self, after: Duration, ev: Ev) {
        self.schedule_at(self.now.add(after), ev);
    }

    pub(super) fn schedule_at(&mut self, at: Timestamp, ev: Ev) {
        self.seq += 1;
        self.queue.push(Scheduled { at, seq: self.seq, ev });
    }

    pub(super) fn push_line(&mut self, line: String) {
        if !self.line.is_empty() {
            self.line.push_str("\n        ");
        }
        self.line.push_str(&line);
    }

    pub(super) fn end_step(&mut self) {
        if self.opts.trace == Trace::Off {
            return;
        }
        let secs = self.now.since(t0()).as_secs_f64();
        let entry = format!("#{:<5} t={secs:>8.3}s {}", self.step, std::mem::take(&mut self.line));
        if self.opts.trace == Trace::Full {
            println!("{entry}");
        }
        self.trace.push_back(entry);
        if self.trace.len() > 40 {
            self.trace.pop_front();
        }
    }

    pub(super) fn hub_current(&self) -> Option<ResourceKey> {
        self.hub.state().current().cloned()
    }

    // --- the main loop -----------------------------------------------------------------------

    pub(super) fn run(&mut self) -> Res<Stats> {
        let mut quiet_start = None;
        loop {
            if !self.quiet && self.step >= self.opts.action_steps {
                self.quiet = true;
                quiet_start = Some(self.now);
                log!(self, "--- quiet period: no more actions, breaks or lost HTTP ---");
            }
            if let Some(qs) = quiet_start {
                let waited = self.now.since(qs);
                if waited >= QUIET && (self.settled() || waited >= QUIET + MAX_EXTENSION) {
                    break;
                }
            }
            if self.step >= MAX_STEPS {
                return fail("livelock", format!("more than {MAX_STEPS} steps"));
            }
            self.step += 1;
            self.one_step(quiet_start.map(|q| (q.add(QUIET), q.add(QUIET + MAX_EXTENSION))))?;
            self.track_hub();
            self.check()?;
            self.check_told()?;
            self.end_step();
        }
        self.check_liveness()?;
        self.stats.steps = self.step;
        Ok(self.stats.clone())
    }

    pub(super) fn one_step(&mut self, quiet: Option<(Timestamp, Timestamp)>) -> Res {
        let q = self.queue.peek().map(|s| s.at);
        let h = self.hub.poll_timeout();
        let mut f: Option<(Timestamp, usize)> = None;
        for (i, n) in self.nodes.iter().enumerate() {
            if let Some(t) = n.sub.poll_timeout() {
                let t = n.global(t);
                if f.is_none_or(|(best, _)| t < best) {
                    f = Some((t, i));
                }
            }
        }
        // Deadlines first on ties (hub, then followers), then the queue in order.
        let best = [h.map(|t| (t, 0)), f.map(|(t, _)| (t, 1)), q.map(|t| (t, 2))].into_iter().flatten().min();
        // In the quiet period, nothing beyond its end (or the end of its extension) happens:
        // the clock stops there and the scenario ends.
        let target = quiet.map(|(end, horizon)| if self.now < end { end } else { horizon });
        let best = best.filter(|(at, _)| target.is_none_or(|t| *at <= t));
        let Some((at, which)) = best else {
            if let Some(t) = target {
                self.now = self.now.max(t);
            }
            log!(self, "idle");
            return Ok(());
        };
        self.now = self.now.max(at);
        match which {
            0 => {
                log!(self, "hub: timeout");
                let overdue = self.overdue();
                self.hub.handle_timeout(self.now);
                self.route()?;
                self.timeouts_noticed(overdue);
                if self.hub.poll_timeout().is_some_and(|t| t <= self.now) {
                    return fail("timer", "hub.handle_timeout left a deadline in the past".into());
                }
            }
            1 => {
                let (_, i) = f.expect("chosen");
                log!(self, "{}: timeout", self.nodes[i].name);
                let local = self.nodes[i].local(self.now);
                self.nodes[i].sub.handle_timeout(local);
                self.drain_node(i)?;
                if self.nodes[i].sub.poll_timeout().is_some_and(|t| t <= local) {
                    return fail(
                        "timer",
                        format!("{}: handle_timeout left a deadline in the past", self.nodes[i].name),
                    );
                }
            }
            _ => {
                let s = self.queue.pop().expect("peeked");
                self.process(s.ev)?;
            }
        }
        Ok(())
    }

    /// Records the Hub's current anchor, the anchors it holds open, and each app's view when
    /// the Hub's state may have changed (a new current anchor or a minted id: every open,
    /// update and derived event mints one).
    pub(super) fn track_hub(&mut self) {
        let cur = self.hub_current();
        let minted = self.hub.state().minted();
        if self.view_key.0 == cur && self.view_key.1 == minted {
            return;
        }
        if self.hub_history.last().map(|(_, a)| a) != Some(&cur) {
            self.hub_history.push((self.step, cur.clone()));
        }
        self.view_key = (cur, minted);
        let mut open = 0;
        for k in self.hub.state().open_contexts() {
            open += 1;
            if !self.ever_opened.contains(k) {
                self.ever_opened.insert(k.clone());
            }
        }
        if open >= self.hub_config.max_open_contexts {
            self.stats.open_contexts_full += 1;
        }
        for i in 0..self.nodes.len() {
            let v = self.hub.view_for(&self.nodes[i].events).map(|v| v.anchor);
            let n = &mut self.nodes[i];
            if n.views.last().map(|(_, a)| a) != Some(&v) {
                n.views.push((self.step, v));
            }
        }
    }

    // --- events ------------------------------------------------------------------------------

    fn process(&mut self, ev: Ev) -> Res {
        match ev {
            Ev::Act if self.quiet => {
                log!(self, "(no action: quiet period)");
                Ok(())
            }
            Ev::Act => self.act(),
            Ev::Start { node, gen } => self.start(node, gen),
            Ev::Reload { node, fresh } => self.reload(node, fresh),
            Ev::Down { sock, msg, replay } => {
                if replay && !self.sockets[sock].broken {
                    self.sockets[sock].replay_in_flight -= 1;
                }
                self.down(sock, msg)
            }
            Ev::Up { sock, text } => self.up(sock, text),
            Ev::UpClose { sock } => {
                let s = &mut self.sockets[sock];
                let name = self.nodes[s.node].name.clone();
                if s.broken || !s.hub_attached {
                    log!(self, "{name} -> hub WS close 1000: lost");
                    return Ok(());
                }
                s.hub_attached = false;
                s.owed.clear();
                let token = s.token.clone();
                log!(self, "{name} -> hub WS close 1000");
                self.hub.handle_close(&token, 1000, self.now);
                self.route()
            }
            Ev::WsOpen { sock } => {
                let s = &self.sockets[sock];
                let (node, token) = (s.node, s.token.clone());
                if s.broken {
                    log!(self, "{}: WS upgrade lost", self.nodes[node].name);
                    return Ok(());
                }
                match self.hub.handle_connect(&token, self.now) {
                    Ok(()) => {
                        log!(self, "hub: {} connected on {token}", self.nodes[node].name);
                        self.sockets[sock].hub_attached = true;
                        self.replaying = Some(sock);
                        let r = self.route();
                        self.replaying = None;
                        r
                    }
                    Err(e) => {
                        log!(self, "hub: {} upgrade refused: {e}", self.nodes[node].name);
                        self.sockets[sock].broken = true;
                        let d = self.rng.ms(10, 300);
                        self.schedule(d, Ev::NodeDetects { sock });
                        Ok(())
                    }
                }
            }
            Ev::HubDetects { sock } => {
                let s = &mut self.sockets[sock];
                if !s.hub_attached {
                    log!(self, "hub: (socket {} already gone)", s.token);
                    return Ok(());
                }
                s.hub_attached = false;
                let token = s.token.clone();
                log!(self, "hub: socket {token} closed 1006");
                self.lost(sock);
                self.hub.handle_close(&token, 1006, self.now);
                self.route()
            }
            Ev::NodeDetects { sock } => self.node_detects(sock),
            Ev::ToHub { node, gen, req } => self.at_hub(node, gen, req),
            Ev::ToNode { node, gen, resp } => {
                self.nodes[node].http_in_flight -= 1;
                if gen != self.nodes[node].gen {
                    log!(self, "{}: (answer for the app before its reload, dropped)", self.nodes[node].name);
                    return Ok(());
                }
                self.at_node(node, resp)
            }
            Ev::Decide { node, id, decision } => self.decided_later(node, id, decision),
        }
    }

    /// A scripted action: evict or restart the Hub, break a socket, or have an app publish.
    pub(super) fn act(&mut self) -> Res {
        let d = self.rng.ms(100, 2500);
        self.schedule(d, Ev::Act);
        if self.rng.chance(0.04) {
            // The Durable Object is evicted and rebuilt from its persisted state; its
            // WebSockets survive (hibernation). The outbound queue is always drained by now.
            assert!(self.hub.poll_outbound().is_none(), "the shell drains before persisting");
            let restored = self.store.evict(&mut self.hub).expect("every row within the limits");
            assert_eq!(restored.state(), self.hub.state(), "the stored rows restore the whole state");
            self.hub = restored;
            self.stats.evictions += 1;
            let bytes: usize = self.store.sizes().map(|(_, n)| n).sum();
            log!(self, "hub: evicted and restored from its stored rows ({bytes} bytes)");
            return Ok(());
        }
        if self.has(Features::RESTARTS) && self.rng.chance(0.015) {
            return self.restart();
        }
        if self.rng.chance(self.break_chance) {
            let live: Vec<usize> =
                self.nodes.iter().filter_map(|n| n.sock.filter(|&s| !self.sockets[s].broken)).collect();
            if !live.is_empty() {
                let sock = live[self.rng.below(live.len() as u64) as usize];
                self.sockets[sock].broken = true;
                self.stats.breaks += 1;
                let name = self.nodes[self.sockets[sock].node].name.clone();
                log!(self, "network: {name}'s socket {} BREAKS", self.sockets[sock].token);
                let hub_delay = self.rng.ms(50, 25_000);
                let node_delay = self.rng.ms(50, 20_000);
                self.schedule(hub_delay, Ev::HubDetects { sock });
                self.schedule(node_delay, Ev::NodeDetects { sock });
                return Ok(());
            }
        }
        let publishers: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.nodes[i].app.is_some()).collect();
        let i = publishers[self.rng.below(publishers.len() as u64) as usize];
        self.publish(i)
    }

    /// The Hub's Durable Object restarts: every socket is lost; the new instance rebuilds the
    /// Topic from its stored state and closes (1006) the subscriptions whose socket is gone,
    /// as edge-hub does on load.
    fn restart(&mut self) -> Res {
        assert!(self.hub.poll_outbound().is_none(), "the shell drains before persisting");
        let restored = self.store.evict(&mut self.hub).expect("every row within the limits");
        assert_eq!(restored.state(), self.hub.state(), "the stored rows restore the whole state");
        self.hub = restored;
        self.stats.restarts += 1;
        log!(self, "hub: RESTARTS; every socket is lost");
        for sock in 0..self.sockets.len() {
            if !self.sockets[sock].broken {
                self.sockets[sock].broken = true;
                let d = self.rng.ms(50, 3000);
                self.schedule(d, Ev::NodeDetects { sock });
            }
        }
        let gone: Vec<String> = self.hub.connected_endpoints().map(str::to_owned).collect();
        for token in gone {
            if let Some(&sock) = self.token_sock.get(&token) {
                if self.sockets[sock].hub_attached {
                    self.sockets[sock].hub_attached = false;
                    self.lost(sock);
                }
            }
            log!(self, "hub: (on load) {token} closed 1006");
            self.hub.handle_close(&token, 1006, self.now);
        }
        self.route()
    }
}

/// The events an app of `kind` subscribes to.
pub(super) fn events_of(kind: AppKind, home: bool, logout: bool) -> Vec<EventName> {
    let mut v: Vec<&str> = Vec::new();
    let patient = ["Patient-open", "Patient-close"];
    let study = ["ImagingStudy-open", "ImagingStudy-close"];
    let report = ["DiagnosticReport-open", "DiagnosticReport-close", "DiagnosticReport-update"];
    match kind {
        AppKind::Full => {
            v.extend(patient);
            v.extend(study);
            v.extend(report);
            v.extend(["Home-open", "UserLogout", "UserHibernate"]);
        }
        // It follows Patient-update too (nobody sends one): so it keeps content for patients,
        // and a snapshot that it shows as a view of a report must not give it the report's.
        AppKind::Patient => v.extend(patient.into_iter().chain(["Patient-update"])),
        AppKind::Study => v.extend(study),
        AppKind::PatientStudy => {
            v.extend(patient);
            v.extend(study);
        }
        AppKind::Report => {
            v.extend(report);
            v.extend(patient);
            v.extend(study);
        }
    }
    if kind != AppKind::Full {
        if home {
            v.push("Home-open");
        }
        if logout {
            v.extend(["UserLogout", "UserHibernate"]);
        }
    }
    v.push("SyncError");
    v.into_iter().map(|e| EventName::parse(e).expect("catalogued")).collect()
}
