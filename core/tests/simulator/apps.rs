//! The apps: what they publish, how they decide about what they are given, and reloads.

use super::*;

/// What an app publishes next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    OpenPatient,
    ClosePatient,
    OpenStudy,
    CloseStudy,
    OpenReport,
    UpdateReport,
    CloseReport,
    Home,
    Logout,
    Hibernate,
}

impl Sim {
    pub(super) fn publish(&mut self, i: usize) -> Res {
        let node = &self.nodes[i];
        let follows = |e: &str| node.follows(e);
        let mut menu: Vec<(u64, Action)> = Vec::new();
        if follows("Patient-open") {
            menu.extend([(7, Action::OpenPatient), (3, Action::ClosePatient)]);
        }
        if follows("ImagingStudy-open") && (self.has(Features::SUBSETS) || self.has(Features::MULTITAB)) {
            let w = if node.kind == AppKind::Study { 7 } else { 3 };
            menu.extend([(w, Action::OpenStudy), (w / 2 + 1, Action::CloseStudy)]);
        }
        if follows("DiagnosticReport-open") {
            let updates = if self.has(Features::CONTENT) { 6 } else { 3 };
            menu.extend([(4, Action::OpenReport), (updates, Action::UpdateReport), (2, Action::CloseReport)]);
        }
        if follows("Home-open") || self.has(Features::LOGOUT) {
            menu.push((1, Action::Home));
        }
        if self.has(Features::LOGOUT) {
            menu.extend([(1, Action::Logout), (1, Action::Hibernate)]);
        }
        if menu.is_empty() {
            return Ok(());
        }
        let total: u64 = menu.iter().map(|(w, _)| w).sum();
        let mut r = self.rng.below(total);
        let action = menu
            .iter()
            .find(|(w, _)| {
                if r < *w {
                    true
                } else {
                    r -= w;
                    false
                }
            })
            .expect("weights")
            .1;
        let patients = if self.has(Features::MAX_OPEN) { PATIENTS.len() } else { 4 } as u64;
        let p = PATIENTS[self.rng.below(patients) as usize];
        let s = STUDIES[self.rng.below(4) as usize];
        let r = REPORTS[self.rng.below(3) as usize];
        let (name, context) = match action {
            Action::OpenPatient => ("Patient-open", vec![patient(p)]),
            Action::ClosePatient => ("Patient-close", vec![patient(&self.close_target(i, "Patient", p))]),
            Action::OpenStudy => ("ImagingStudy-open", study_context(s)),
            Action::CloseStudy => ("ImagingStudy-close", study_context(&self.close_target(i, "ImagingStudy", s))),
            Action::OpenReport => ("DiagnosticReport-open", report_context(r)),
            Action::CloseReport => {
                ("DiagnosticReport-close", report_context(&self.close_target(i, "DiagnosticReport", r)))
            }
            Action::UpdateReport => {
                let r = self.update_target(i, r);
                let body = format!(
                    r#"{{"resourceType":"Bundle","id":"b{}","type":"transaction","entry":[{{"request":{{"method":"PUT"}},"resource":{{"resourceType":"Observation","id":"o{}","status":"preliminary"}}}}]}}"#,
                    self.seq,
                    self.rng.below(5)
                );
                let updates = ContextEntry::resource_raw("updates", &body).expect("valid JSON");
                ("DiagnosticReport-update", vec![ContextEntry::reference("report", "DiagnosticReport", &r), updates])
            }
            Action::Home => ("Home-open", vec![]),
            Action::Logout => ("UserLogout", vec![parameters()]),
            Action::Hibernate => ("UserHibernate", vec![parameters()]),
        };
        let node = &mut self.nodes[i];
        node.next_id += 1;
        let id = format!("{}-{}", node.name, node.next_id);
        let local = node.local(self.now);
        match node.f_mut().prepare(EventName::parse(name).expect("catalogued"), context, &id, local) {
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

    /// The anchor of type `rt` to close: the one the app shows; with `multitab`, sometimes
    /// another one the Hub holds open (a tab in the background); else `fallback`.
    fn close_target(&mut self, i: usize, rt: &str, fallback: &str) -> String {
        let shown = self.nodes[i].f().current().map(|c| c.anchor.clone());
        let shown = shown.filter(|k| k.resource_type == rt).map(|k| k.id);
        if self.has(Features::MULTITAB) && (shown.is_none() || self.rng.chance(0.4)) {
            let open: Vec<String> = self
                .hub
                .state()
                .open_contexts()
                .filter(|k| k.resource_type == rt && Some(*k) != self.hub.state().current())
                .map(|k| k.id.clone())
                .collect();
            if !open.is_empty() {
                return open[self.rng.below(open.len() as u64) as usize].clone();
            }
        }
        shown.unwrap_or_else(|| fallback.to_owned())
    }

    /// The report to update: the one the app shows; with `multitab` or `content`, sometimes
    /// another open one whose version the app knows.
    fn update_target(&mut self, i: usize, fallback: &str) -> String {
        let f = self.nodes[i].f();
        let shown = f.current().map(|c| c.anchor.clone()).filter(|k| k.resource_type == "DiagnosticReport");
        if (self.has(Features::MULTITAB) || self.has(Features::CONTENT)) && (shown.is_none() || self.rng.chance(0.4)) {
            let known: Vec<String> = self
                .hub
                .state()
                .open_contexts()
                .filter(|k| k.resource_type == "DiagnosticReport" && f.version_of(k).is_some())
                .map(|k| k.id.clone())
                .collect();
            if !known.is_empty() {
                return known[self.rng.below(known.len() as u64) as usize].clone();
            }
        }
        shown.map(|k| k.id).unwrap_or_else(|| fallback.to_owned())
    }

    /// The app gets a notification and decides according to its policy.
    pub(super) fn deliver(&mut self, i: usize, ev: Event) -> Res {
        let name = self.nodes[i].name.clone();
        log!(self, "{name}: app gets {}", ev_str(&ev));
        let n = &mut self.nodes[i];
        let id = ev.id.clone();
        let is_update = ev.name.kind() == EventKind::Update;
        let dislikes = ev.anchor().is_some_and(|a| n.disliked.contains(&a.id.as_str()))
            || (is_update && n.refuses_updates && self.rng.chance(0.3));
        n.delivered.insert(id.clone(), ev);
        let now_decision = match n.policy {
            Policy::Accept => Some(Decision::Accept),
            Policy::Dislike(_) if !dislikes => Some(Decision::Accept),
            Policy::Dislike(Refusal::Conflict) => Some(Decision::Refuse),
            Policy::Dislike(Refusal::Failure) => Some(Decision::Fail),
            Policy::Dislike(Refusal::DeferThenRefuse) => {
                let d = self.rng.ms(200, 8000);
                self.schedule(d, Ev::Decide { node: i, id: id.clone(), decision: Decision::Refuse });
                Some(Decision::Defer)
            }
            Policy::Dislike(Refusal::Undecided) => None,
            Policy::SlowAccept => {
                let d = self.rng.ms(0, 7000);
                self.schedule(d, Ev::Decide { node: i, id: id.clone(), decision: Decision::Accept });
                None
            }
            Policy::DeferThenDecide => {
                let d = self.rng.ms(200, 12_000);
                let later = if self.rng.chance(0.3) { Decision::Refuse } else { Decision::Accept };
                self.schedule(d, Ev::Decide { node: i, id: id.clone(), decision: later });
                Some(Decision::Defer)
            }
            Policy::NeverDecide | Policy::Zombie => None,
        };
        if let Some(d) = now_decision {
            let local = self.nodes[i].local(self.now);
            let n = &mut self.nodes[i];
            let ev = if d == Decision::Defer { n.delivered.get(&id).cloned() } else { n.delivered.remove(&id) };
            let before = n.shown();
            n.f_mut().decide(&id, d, local);
            log!(self, "{name}: app decides {d:?}");
            self.decided(i, d);
            self.after_change(i, before, ev.as_ref())?;
        }
        Ok(())
    }

    /// A decision taken after a delay.
    pub(super) fn decided_later(&mut self, node: usize, id: String, decision: Decision) -> Res {
        let Some(ev) = self.nodes[node].delivered.remove(&id) else { return Ok(()) };
        log!(self, "{}: app decides {decision:?} on {}", self.nodes[node].name, ev_str(&ev));
        let local = self.nodes[node].local(self.now);
        let n = &mut self.nodes[node];
        let before = n.shown();
        n.f_mut().decide(&id, decision, local);
        self.decided(node, decision);
        self.after_change(node, before, Some(&ev))?;
        self.drain_node(node)
    }

    /// Counts a decision; with `restarts`, an app that refused sometimes reloads or reconnects.
    fn decided(&mut self, node: usize, d: Decision) {
        match d {
            Decision::Accept => self.stats.accepted += 1,
            Decision::Refuse | Decision::Fail => {
                self.stats.refused += 1;
                if self.has(Features::RESTARTS) && self.rng.chance(0.25) {
                    let fresh = self.rng.chance(0.5);
                    let d = self.rng.ms(300, 5000);
                    self.schedule(d, Ev::Reload { node, fresh });
                }
            }
            Decision::Defer => {}
        }
    }

    /// The app reloads (a fresh subscriber: nothing of the old one survives, and the page's
    /// socket closes with 1000) or reconnects (the same subscriber: the app closes its socket
    /// with 1000, and the subscriber, told so, subscribes again).
    pub(super) fn reload(&mut self, node: usize, fresh: bool) -> Res {
        let Some(sock) = self.nodes[node].sock else { return Ok(()) };
        if self.quiet {
            return Ok(());
        }
        self.stats.reloads += 1;
        let name = self.nodes[node].name.clone();
        log!(
            self,
            "{name}: app {}; socket {} closes",
            if fresh { "RELOADS" } else { "reconnects" },
            self.sockets[sock].token
        );
        self.close_from_app(sock);
        self.nodes[node].sock = None;
        if fresh {
            let seed = self.rng.next();
            self.nodes[node].fresh(seed);
            let gen = self.nodes[node].gen;
            let d = self.rng.ms(100, 1000);
            self.schedule(d, Ev::Start { node, gen });
            Ok(())
        } else {
            let local = self.nodes[node].local(self.now);
            let tag = self.sockets[sock].tag;
            self.nodes[node].sub.handle_socket_closed(tag, 1000, "the app reconnects", local);
            self.drain_node(node)
        }
    }
}
