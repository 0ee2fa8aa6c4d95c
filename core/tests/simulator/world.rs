//! The clock, the scenario and the main loop: one step at a time, to the earliest of the
//! next delivery, the Hub's deadline, a follower's deadline and the next scripted action.

use super::*;

impl Sim {
    pub(super) fn new(seed: u64, opts: Options) -> Self {
        let mut rng = Rng(seed ^ 0x5EED_F00D_CAFE_0001);
        let n = 2 + rng.below(4) as usize;
        let clean = rng.chance(0.15);
        let mut nodes = Vec::new();
        for i in 0..n {
            let policy = if i == 0 {
                Policy::Accept
            } else if clean {
                [Policy::Accept, Policy::SlowAccept][rng.below(2) as usize]
            } else {
                match rng.below(12) {
                    0..=2 => Policy::Accept,
                    3..=4 => Policy::SlowAccept,
                    5..=6 => Policy::RefuseSome,
                    7..=8 => Policy::DeferThenDecide,
                    9..=10 => Policy::NeverDecide,
                    _ => Policy::Zombie,
                }
            };
            let skew_ns = if rng.chance(0.5) { rng.below(4_000_000_000) as i64 - 2_000_000_000 } else { 0 };
            let lease = rng.chance(0.2).then(|| 30 + rng.below(120));
            let name = format!("n{i}");
            let app = (policy != Policy::Zombie).then(|| App {
                f: Follower::new("T1", Some(name.clone()), FollowerConfig::default()),
                lie: opts.lying_followers && matches!(policy, Policy::RefuseSome | Policy::DeferThenDecide),
            });
            let disliked = vec![PATIENTS[rng.below(4) as usize], REPORTS[rng.below(3) as usize]];
            nodes.push(Node {
                name,
                policy,
                app,
                skew_ns,
                lease,
                conn: Conn::Down,
                reconnect_scheduled: false,
                attempts: 0,
                next_id: 0,
                disliked,
                delivered: BTreeMap::new(),
                own: BTreeMap::new(),
                gets_in_flight: Vec::new(),
                applied_ts: None,
                snapshot_step: None,
            });
        }
        let break_chance = if clean { 0.0 } else { [0.0, 0.05, 0.15, 0.3][rng.below(4) as usize] };
        let loss_chance = if clean { 0.0 } else { [0.0, 0.02, 0.06][rng.below(3) as usize] };
        let mut sim = Sim {
            opts,
            rng,
            now: t0(),
            step: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            hub: Topic::new("T1", "h", HubConfig::default()),
            nodes,
            sockets: Vec::new(),
            token_sock: BTreeMap::new(),
            next_token: 0,
            hub_history: vec![(0, None)],
            ever_opened: BTreeSet::new(),
            quiet: false,
            clean,
            replaying: None,
            break_chance,
            loss_chance,
            trace: VecDeque::new(),
            line: String::new(),
            stats: Stats::default(),
        };
        let desc: Vec<String> = sim
            .nodes
            .iter()
            .map(|n| {
                format!(
                    "{}={:?}{}{}",
                    n.name,
                    n.policy,
                    if n.skew_ns != 0 { format!(" skew={}ms", n.skew_ns / 1_000_000) } else { String::new() },
                    n.lease.map(|l| format!(" lease={l}s")).unwrap_or_default()
                )
            })
            .collect();
        log!(
            sim,
            "scenario seed={seed} clean={clean} breaks={break_chance} http-loss={loss_chance}: {}",
            desc.join(", ")
        );
        sim.end_step();
        for i in 0..sim.nodes.len() {
            let d = sim.rng.ms(0, 500);
            sim.schedule(d, Ev::Reconnect { node: i });
            sim.nodes[i].reconnect_scheduled = true;
        }
        let d = sim.rng.ms(500, 2000);
        sim.schedule(d, Ev::Act);
        sim
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
            if let Some(t) = n.app.as_ref().and_then(|a| a.f.poll_timeout()) {
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
                self.hub.handle_timeout(self.now);
                self.route()?;
                if self.hub.poll_timeout().is_some_and(|t| t <= self.now) {
                    return fail("timer", "hub.handle_timeout left a deadline in the past".into());
                }
            }
            1 => {
                let (_, i) = f.expect("chosen");
                log!(self, "{}: timeout", self.nodes[i].name);
                let local = self.nodes[i].local(self.now);
                self.nodes[i].app.as_mut().expect("has a follower").f.handle_timeout(local);
                self.drain_node(i)?;
                let app = self.nodes[i].app.as_ref().expect("has a follower");
                if app.f.poll_timeout().is_some_and(|t| t <= local) {
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

    pub(super) fn track_hub(&mut self) {
        let cur = self.hub_current();
        if self.hub_history.last().map(|(_, a)| a) != Some(&cur) {
            self.hub_history.push((self.step, cur));
        }
        for k in self.hub.state().open_contexts() {
            if !self.ever_opened.contains(k) {
                self.ever_opened.insert(k.clone());
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
            Ev::Reconnect { node } => {
                self.reconnect(node);
                Ok(())
            }
            Ev::Down { sock, msg, replay } => {
                if replay && !self.sockets[sock].broken {
                    self.sockets[sock].replay_in_flight -= 1;
                }
                self.down(sock, msg)
            }
            Ev::Up { sock, text } => {
                let s = &self.sockets[sock];
                let name = self.nodes[s.node].name.clone();
                if s.broken || !s.hub_attached {
                    log!(self, "{name} -> hub WS {text}: lost");
                    return Ok(());
                }
                let token = s.token.clone();
                log!(self, "{name} -> hub WS {text}");
                if let Err(e) = self.hub.handle_message(&token, &text, self.now) {
                    return fail("protocol", format!("the hub could not read an ack: {e}"));
                }
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
                self.hub.handle_close(&token, 1006, self.now);
                self.route()
            }
            Ev::NodeDetects { sock } => {
                let node = self.sockets[sock].node;
                self.sockets[sock].node_knows_end = true;
                if self.nodes[node].conn != Conn::Sock(sock) {
                    log!(self, "{}: (old socket broke)", self.nodes[node].name);
                    return Ok(());
                }
                log!(self, "{}: socket lost (1006)", self.nodes[node].name);
                self.disconnected(node, "connection lost (1006)")
            }
            Ev::ToHub { node, req } => self.at_hub(node, req),
            Ev::ToNode { node, resp } => self.at_node(node, resp),
            Ev::Decide { node, id, decision } => {
                let Some(ev) = self.nodes[node].delivered.remove(&id) else { return Ok(()) };
                log!(self, "{}: app decides {decision:?} on {}", self.nodes[node].name, ev_str(&ev));
                let local = self.nodes[node].local(self.now);
                let app = self.nodes[node].app.as_mut().expect("has a follower");
                let before = app.shown();
                app.f.decide(&id, decision, local);
                self.after_change(node, before, Some(&ev))?;
                self.drain_node(node)
            }
        }
    }

    /// A scripted action: evict the Hub, break a socket, or have an app publish.
    pub(super) fn act(&mut self) -> Res {
        let d = self.rng.ms(100, 2500);
        self.schedule(d, Ev::Act);
        if self.rng.chance(0.04) {
            // The Durable Object is evicted and rebuilt from its persisted state; its
            // WebSockets survive (hibernation). The outbound queue is always drained by now.
            assert!(self.hub.poll_outbound().is_none(), "the shell drains before persisting");
            let json = serde_json::to_string(self.hub.state()).expect("state serialises");
            let state: TopicState = serde_json::from_str(&json).expect("state deserialises");
            self.hub = Topic::restore(state, HubConfig::default());
            self.stats.evictions += 1;
            log!(self, "hub: evicted and restored from its persisted state ({} bytes)", json.len());
            return Ok(());
        }
        if self.rng.chance(self.break_chance) {
            let live: Vec<usize> = self
                .nodes
                .iter()
                .filter_map(|n| match n.conn {
                    Conn::Sock(s) if !self.sockets[s].broken => Some(s),
                    _ => None,
                })
                .collect();
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

    fn publish(&mut self, i: usize) -> Res {
        let shown = self.nodes[i].app.as_ref().and_then(|a| a.f.current().map(|c| c.anchor.clone()));
        let shown_report = shown.as_ref().filter(|k| k.resource_type == "DiagnosticReport").map(|k| k.id.clone());
        let shown_patient = shown.as_ref().filter(|k| k.resource_type == "Patient").map(|k| k.id.clone());
        let p = PATIENTS[self.rng.below(4) as usize].to_owned();
        let r = REPORTS[self.rng.below(3) as usize].to_owned();
        let (name, context) = match self.rng.below(20) {
            0..=6 => ("Patient-open", vec![patient(&p)]),
            7..=9 => ("Patient-close", vec![patient(&shown_patient.unwrap_or(p))]),
            10..=13 => ("DiagnosticReport-open", vec![report(&r), patient(report_patient(&r))]),
            14..=16 => {
                let r = shown_report.unwrap_or(r);
                let body = format!(
                    r#"{{"resourceType":"Bundle","id":"b{}","type":"transaction","entry":[{{"request":{{"method":"PUT"}},"resource":{{"resourceType":"Observation","id":"o{}","status":"preliminary"}}}}]}}"#,
                    self.seq,
                    self.rng.below(5)
                );
                let updates = ContextEntry::resource_raw("updates", &body).expect("valid JSON");
                ("DiagnosticReport-update", vec![ContextEntry::reference("report", "DiagnosticReport", &r), updates])
            }
            17..=18 => {
                let r = shown_report.unwrap_or(r);
                ("DiagnosticReport-close", vec![report(&r), patient(report_patient(&r))])
            }
            _ => ("Home-open", vec![]),
        };
        let node = &mut self.nodes[i];
        node.next_id += 1;
        let id = format!("{}-{}", node.name, node.next_id);
        let local = node.local(self.now);
        let app = node.app.as_mut().expect("publishers have a follower");
        match app.f.prepare(EventName::parse(name).expect("catalogued"), context, &id, local) {
            Ok(ev) => {
                self.stats.publishes += 1;
                log!(self, "{}: app publishes {}", self.nodes[i].name, ev_str(&ev));
                self.post(i, ev);
                self.drain_node(i)
            }
            Err(e) => {
                log!(self, "{}: app cannot publish {name}: {e}", self.nodes[i].name);
                Ok(())
            }
        }
    }
}
