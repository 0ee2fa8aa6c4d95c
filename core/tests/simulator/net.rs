//! The network (WebSockets, HTTP) and the shells that pump the state machines onto it.

use super::*;

const HUB_URL: &str = "https://hub.example/api/hub/ws/";

impl Sim {
    /// The shell POSTs an event of its app (or one the follower asks for) to the Hub.
    pub(super) fn post(&mut self, i: usize, ev: Event) {
        let json = ev.to_json();
        self.http_request(i, Req::Post { id: ev.id, json });
    }

    /// An HTTP request on its way to the Hub, unless lost (then the shell sees an error).
    pub(super) fn http_request(&mut self, node: usize, req: Req) {
        let gen = self.nodes[node].gen;
        self.nodes[node].http_in_flight += 1;
        if self.rng.chance(self.loss_chance) && !self.quiet {
            self.stats.lost_http += 1;
            log!(self, "network: {}'s HTTP request is lost", self.nodes[node].name);
            let resp = match req {
                Req::Subscribe(_) => Resp::Subscribed(Err("network error".into())),
                Req::Renew { sock, .. } => Resp::Renewed { sock, result: Err(0) },
                Req::Post { id, .. } => Resp::Posted { id, result: Err((504, "network error".into())) },
                Req::Get => Resp::Snapshot { result: Err("network error".into()), step: self.step },
            };
            let d = self.rng.ms(500, 5000);
            self.schedule(d, Ev::ToNode { node, gen, resp });
            return;
        }
        let d = self.rng.delay(5, 400, 3000);
        self.schedule(d, Ev::ToHub { node, gen, req });
    }

    /// An HTTP answer on its way back, unless lost (then the shell sees an error).
    fn http_response(&mut self, node: usize, gen: u64, mut resp: Resp) {
        if self.rng.chance(self.loss_chance) && !self.quiet {
            self.stats.lost_http += 1;
            log!(self, "network: the answer to {} is lost", self.nodes[node].name);
            resp = match resp {
                Resp::Subscribed(_) => Resp::Subscribed(Err("network error".into())),
                Resp::Renewed { sock, .. } => Resp::Renewed { sock, result: Err(0) },
                Resp::Posted { id, .. } => Resp::Posted { id, result: Err((504, "network error".into())) },
                Resp::Snapshot { step, .. } => Resp::Snapshot { result: Err("network error".into()), step },
            };
        }
        if let Resp::Snapshot { result: Ok(_), step } = &resp {
            if gen == self.nodes[node].gen {
                self.nodes[node].gets_in_flight.push(*step);
            }
        }
        let d = self.rng.delay(5, 400, 3000);
        self.schedule(d, Ev::ToNode { node, gen, resp });
    }

    /// The Hub's shell handles an HTTP request.
    pub(super) fn at_hub(&mut self, node: usize, gen: u64, req: Req) -> Res {
        let name = self.nodes[node].name.clone();
        match req {
            Req::Subscribe(r) => {
                self.next_token += 1;
                let token = format!("tok{}", self.next_token);
                let result = self.hub.handle_subscription(&r, &Auth::open(), &token, self.now);
                log!(self, "hub: subscribe from {name}: {result:?}");
                let result = result.map(|a| a.endpoint).map_err(|e| e.to_string());
                self.route()?;
                self.http_response(node, gen, Resp::Subscribed(result));
            }
            Req::Renew { sock, req } => {
                self.next_token += 1;
                let token = format!("tok{}", self.next_token);
                let result = self.hub.handle_subscription(&req, &Auth::open(), &token, self.now);
                log!(self, "hub: renewal from {name} for {}: {result:?}", self.sockets[sock].token);
                let result = result.map(|_| ()).map_err(|e| e.http_status());
                self.route()?;
                self.http_response(node, gen, Resp::Renewed { sock, result });
            }
            Req::Post { id, json } => {
                let ev = match Event::parse_envelope(&json) {
                    Ok(ev) => ev,
                    Err(e) => return fail("protocol", format!("the hub cannot read {name}'s POST: {e}")),
                };
                let sync_error = (ev.name.kind() == EventKind::SyncError).then(|| ev.context.clone());
                let minted = self.hub.state().minted();
                let result = self.hub.handle_event(ev, &Auth::open(), self.now);
                // Ids the Hub minted for this event (derived events among them): `h-<n>`.
                for n in minted..self.hub.state().minted() {
                    self.derived_from.entry(format!("h-{n}")).or_default().push(id.clone());
                }
                match &result {
                    Ok(a) => log!(
                        self,
                        "hub: POST {id} from {name} accepted {:?}{}",
                        a.version_id,
                        if a.duplicate { " (duplicate)" } else { "" }
                    ),
                    Err(e) => log!(self, "hub: POST {id} from {name} refused {}: {e}", e.http_status()),
                }
                if let Ok(a) = &result {
                    if !a.duplicate {
                        self.published.insert(id.clone(), (node, gen, self.now));
                    }
                }
                if let Some(context) = sync_error {
                    self.posted_sync_error(node, &context, &result)?;
                }
                let result = result.map(|_| ()).map_err(|e| (e.http_status(), e.to_string()));
                self.routing_post = Some(id.clone());
                let r = self.route();
                self.routing_post = None;
                r?;
                self.http_response(node, gen, Resp::Posted { id, result });
            }
            Req::Get => {
                let cc = self.hub.current_context(&Auth::open()).expect("open auth");
                log!(self, "hub: GET from {name}: {:?}", self.hub_current().map(|k| k.to_string()));
                let json = serde_json::to_string(&cc).expect("serialises");
                let step = self.step;
                self.http_response(node, gen, Resp::Snapshot { result: Ok(json), step });
            }
        }
        Ok(())
    }

    /// A follower's shell gets an HTTP answer.
    pub(super) fn at_node(&mut self, node: usize, resp: Resp) -> Res {
        let name = self.nodes[node].name.clone();
        let local = self.nodes[node].local(self.now);
        match resp {
            Resp::Subscribed(result) => {
                if self.nodes[node].conn != Conn::Subscribing {
                    log!(self, "{name}: (stale subscribe answer)");
                    return Ok(());
                }
                match result {
                    Ok(token) => {
                        log!(self, "{name}: 202 endpoint {token}; opening the WebSocket");
                        let sock = self.sockets.len();
                        self.sockets.push(Socket {
                            node,
                            token: token.clone(),
                            broken: false,
                            hub_attached: false,
                            hub_closed: false,
                            node_knows_end: false,
                            down_last: self.now,
                            up_last: self.now,
                            down_in_flight: VecDeque::new(),
                            replayed: Vec::new(),
                            replay_in_flight: 0,
                            owed: Vec::new(),
                        });
                        self.token_sock.insert(token, sock);
                        self.nodes[node].conn = Conn::Sock(sock);
                        let d = self.rng.delay(5, 300, 2000);
                        self.schedule(d, Ev::WsOpen { sock });
                    }
                    Err(e) => {
                        log!(self, "{name}: subscribe failed: {e}");
                        self.disconnected(node, "subscribe failed")?;
                    }
                }
            }
            Resp::Renewed { sock, result } => {
                if self.nodes[node].conn != Conn::Sock(sock) || self.sockets[sock].node_knows_end {
                    log!(self, "{name}: (renewal answer for an old socket)");
                    return Ok(());
                }
                match result {
                    Ok(()) => log!(self, "{name}: renewed (the confirmation arms the next renewal)"),
                    Err(s) if (400..500).contains(&s) => {
                        // The subscription is gone: start afresh (req 48), as the SDK does.
                        log!(self, "{name}: renewal refused {s}: subscribing afresh");
                        self.sockets[sock].node_knows_end = true;
                        if !self.sockets[sock].broken {
                            let d = self.rng.delay(1, 300, 3000);
                            let s = &mut self.sockets[sock];
                            let at = s.up_last.max(self.now.add(d));
                            s.up_last = at;
                            self.schedule_at(at, Ev::UpClose { sock });
                        }
                        self.disconnected(node, "the hub refused to renew")?;
                    }
                    Err(_) => {
                        log!(self, "{name}: renewal failed; again in 5 s");
                        self.schedule(Duration::from_secs(5), Ev::Renew { node, sock });
                    }
                }
            }
            Resp::Posted { id, result } => {
                log!(self, "{name}: POST {id} answered {result:?}");
                if result.is_err() && self.has(Features::OWN) {
                    self.nodes[node].post_failed.insert(id.clone());
                }
                if let Some(app) = self.nodes[node].app.as_mut() {
                    app.f.handle_post_result(&id, result, local);
                    self.drain_node(node)?;
                }
            }
            Resp::Snapshot { result, step } => {
                let n = &mut self.nodes[node];
                if let Some(i) = n.gets_in_flight.iter().position(|s| *s == step) {
                    n.gets_in_flight.swap_remove(i);
                }
                self.stats.snapshots += 1;
                match result {
                    Ok(json) => {
                        let cc: CurrentContext = match serde_json::from_str(&json) {
                            Ok(cc) => cc,
                            Err(e) => return fail("protocol", format!("{name} cannot read the snapshot: {e}")),
                        };
                        log!(self, "{name}: snapshot of step #{step}: {:?}", cc.context_type);
                        self.nodes[node].snapshot_step = Some(step);
                        let app = self.nodes[node].app.as_mut().expect("only followers GET");
                        app.f.handle_snapshot(&cc, local);
                        if app.lie == Lie::UnfilteredSnapshot {
                            let raw = snapshot_anchor(&cc);
                            app.raw_snapshot = Some((raw, app.shown()));
                        }
                    }
                    Err(e) => {
                        log!(self, "{name}: GET failed: {e}");
                        let app = self.nodes[node].app.as_mut().expect("only followers GET");
                        app.f.handle_snapshot_failed(&e, local);
                    }
                }
                self.drain_node(node)?;
            }
        }
        Ok(())
    }

    /// A message arrives at the Hub's end of a socket.
    pub(super) fn up(&mut self, sock: usize, text: String) -> Res {
        let s = &self.sockets[sock];
        let name = self.nodes[s.node].name.clone();
        if s.broken || !s.hub_attached {
            log!(self, "{name} -> hub WS {text}: lost");
            return Ok(());
        }
        let token = s.token.clone();
        log!(self, "{name} -> hub WS {text}");
        if self.has(Features::TOLD) {
            self.answer_reaches_hub(sock, &text);
        }
        if let Err(e) = self.hub.handle_message(&token, &text, self.now) {
            return fail("protocol", format!("the hub could not read an ack: {e}"));
        }
        self.route()
    }

    /// A message arrives at the follower's end of a socket.
    pub(super) fn down(&mut self, sock: usize, msg: DownMsg) -> Res {
        let s = &mut self.sockets[sock];
        let node = s.node;
        if s.broken {
            log!(self, "hub -> {} WS: lost ({})", self.nodes[node].name, msg_str(&msg));
            return Ok(());
        }
        s.down_in_flight.pop_front();
        let name = self.nodes[node].name.clone();
        if self.nodes[node].conn != Conn::Sock(sock) {
            log!(self, "hub -> {name} WS (old socket, ignored): {}", msg_str(&msg));
            if let DownMsg::Close(_) = msg {
                self.sockets[sock].node_knows_end = true;
            }
            return Ok(());
        }
        match msg {
            DownMsg::Close(code) => {
                self.sockets[sock].node_knows_end = true;
                let token = self.sockets[sock].token.clone();
                log!(self, "hub -> {name} WS: close {code}");
                // The close handshake completes at the Hub too.
                self.hub.handle_close(&token, code, self.now);
                self.route()?;
                self.disconnected(node, &format!("closed by the hub ({code})"))
            }
            DownMsg::Text(text) => {
                log!(self, "hub -> {name} WS: {}", text_str(&text));
                let local = self.nodes[node].local(self.now);
                let confirmation = text.contains("\"hub.mode\":\"subscribe\"");
                if confirmation {
                    self.nodes[node].attempts = 0;
                    self.confirmed(node, sock, &text);
                }
                let Some(app) = self.nodes[node].app.as_mut() else {
                    return Ok(()); // a zombie: never answers
                };
                let before = app.shown();
                if let Err(e) = app.f.handle_text(&text, local) {
                    return fail("protocol", format!("{name} cannot read a hub message: {e}"));
                }
                if app.shown() != before {
                    let ev = Event::parse_envelope(&text).ok();
                    self.after_change(node, before, ev.as_ref())?;
                }
                let sync_error =
                    (self.has(Features::TOLD) || self.has(Features::OWN)) && text.contains(SYNC_ERROR_MARK);
                self.notices.clear();
                self.drain_node(node)?;
                if sync_error {
                    self.sync_error_delivered(node, &text)?;
                }
                Ok(())
            }
        }
    }

    /// A confirmation on the node's socket: with `renewals`, renew at 80 % of the lease.
    fn confirmed(&mut self, node: usize, sock: usize, text: &str) {
        if !self.nodes[node].renews {
            return;
        }
        let Ok(c) = fhircast_core::wire::Confirmation::parse(text) else { return };
        let after = Duration::from_millis(c.lease_seconds * 800);
        self.schedule(after, Ev::Renew { node, sock });
    }

    /// The shell renews the subscription on its socket: the same endpoint, a new lease.
    pub(super) fn renew(&mut self, node: usize, sock: usize) {
        if self.nodes[node].conn != Conn::Sock(sock) || self.sockets[sock].node_knows_end {
            return;
        }
        self.stats.renewals += 1;
        let n = &self.nodes[node];
        let req = SubscriptionRequest {
            mode: Mode::Subscribe,
            topic: "T1".into(),
            events: n.events.clone(),
            lease_seconds: n.lease,
            endpoint: Some(format!("{HUB_URL}{}", self.sockets[sock].token)),
            subscriber_name: Some(n.name.clone()),
        };
        log!(self, "{}: shell renews the lease of {}", n.name, self.sockets[sock].token);
        self.http_request(node, Req::Renew { sock, req: Box::new(req) });
    }

    /// The shell learns its connection is over: it tells the follower and reconnects later.
    pub(super) fn disconnected(&mut self, node: usize, reason: &str) -> Res {
        self.nodes[node].conn = Conn::Down;
        self.nodes[node].delivered.clear();
        let local = self.nodes[node].local(self.now);
        if let Some(app) = self.nodes[node].app.as_mut() {
            app.f.handle_disconnected(reason, local);
        }
        self.schedule_reconnect(node);
        self.drain_node(node)
    }

    /// Backoff: 125 ms - 8 s, doubling with failed attempts (a confirmation resets it).
    fn schedule_reconnect(&mut self, node: usize) {
        let n = &mut self.nodes[node];
        if n.reconnect_scheduled || (n.policy == Policy::Zombie && self.quiet) {
            return;
        }
        n.reconnect_scheduled = true;
        n.attempts += 1;
        let base = 250u64 << n.attempts.min(4);
        let d = self.rng.ms(base / 2, base * 2);
        self.schedule(d, Ev::Reconnect { node });
    }

    /// The shell subscribes again (the first time too).
    pub(super) fn reconnect(&mut self, node: usize) {
        let n = &mut self.nodes[node];
        n.reconnect_scheduled = false;
        if n.conn != Conn::Down {
            return;
        }
        self.stats.reconnects += 1;
        n.conn = Conn::Subscribing;
        let local = n.local(self.now);
        if let Some(app) = n.app.as_mut() {
            app.f.handle_connecting(local);
        }
        let req = SubscriptionRequest {
            mode: Mode::Subscribe,
            topic: "T1".into(),
            events: n.events.clone(),
            lease_seconds: n.lease,
            endpoint: None,
            subscriber_name: Some(n.name.clone()),
        };
        log!(self, "{}: shell subscribes", self.nodes[node].name);
        self.http_request(node, Req::Subscribe(Box::new(req)));
        let _ = self.drain_node(node);
    }

    /// Pumps the Hub's outputs onto the sockets.
    pub(super) fn route(&mut self) -> Res {
        let told = self.has(Features::TOLD) || self.has(Features::OWN);
        while let Some(o) = self.hub.poll_outbound() {
            let (to, msg) = match o {
                Outbound::Send { to, text } => (to, DownMsg::Text(text)),
                Outbound::Close { to, code, .. } => (to, DownMsg::Close(code)),
            };
            let Some(&sock) = self.token_sock.get(&to) else {
                return fail("protocol", format!("the hub sent to an endpoint no socket has: {to}"));
            };
            let s = &mut self.sockets[sock];
            if s.hub_closed {
                return fail("protocol", format!("the hub used socket {to} after closing it: {}", msg_str(&msg)));
            }
            if let DownMsg::Close(_) = msg {
                s.hub_closed = true;
                s.hub_attached = false;
                s.owed.clear();
            }
            let sync_error = text_is(&msg, SYNC_ERROR_MARK);
            if sync_error && self.opts.drop_sync_errors && s.node == 0 {
                log!(self, "hub -> n0 WS: (the SyncError is DROPPED: the non-vacuity test) {}", msg_str(&msg));
                self.step_dropped.push(sock);
                continue;
            }
            if told {
                if let DownMsg::Text(t) = &msg {
                    self.sent(sock, t.clone())?;
                }
            }
            let s = &mut self.sockets[sock];
            if !s.broken && sync_error {
                self.stats.sync_errors += 1;
            }
            if !s.broken && text_is(&msg, "\"denied\"") {
                self.stats.denials += 1;
            }
            if s.broken {
                let name = self.nodes[s.node].name.clone();
                log!(self, "hub -> {name} WS: sent into a broken socket ({})", msg_str(&msg));
                continue;
            }
            let replay = self.replaying == Some(sock);
            log!(self, "hub sends {} {}", self.nodes[s.node].name, msg_str(&msg));
            let d = self.rng.delay(1, 300, 3000);
            let s = &mut self.sockets[sock];
            let at = s.down_last.max(self.now.add(d));
            s.down_last = at;
            s.down_in_flight.push_back(self.step);
            if replay {
                s.replay_in_flight += 1;
                if let DownMsg::Text(t) = &msg {
                    if let Ok(e) = Event::parse_envelope(t) {
                        s.replayed.push(e.anchor());
                    }
                }
            }
            self.schedule_at(at, Ev::Down { sock, msg, replay });
        }
        Ok(())
    }

    /// Pumps a follower's outputs: acks onto its socket, POSTs and GETs over HTTP, app callbacks.
    pub(super) fn drain_node(&mut self, i: usize) -> Res {
        loop {
            let Some(app) = self.nodes[i].app.as_mut() else { return Ok(()) };
            let Some(out) = app.f.poll_output() else { return Ok(()) };
            let name = self.nodes[i].name.clone();
            match out {
                Output::Send(text) => {
                    let Conn::Sock(sock) = self.nodes[i].conn else {
                        log!(self, "{name}: ack {text} dropped (no socket)");
                        continue;
                    };
                    if self.sockets[sock].broken {
                        log!(self, "{name} -> hub WS {text}: into a broken socket");
                        continue;
                    }
                    let d = self.rng.delay(1, 300, 3000);
                    let s = &mut self.sockets[sock];
                    let at = s.up_last.max(self.now.add(d));
                    s.up_last = at;
                    self.schedule_at(at, Ev::Up { sock, text });
                }
                Output::Deliver(ev) => self.deliver(i, ev)?,
                Output::SyncError(n) => {
                    log!(
                        self,
                        "{name}: app told SyncError {} about {} (own={})",
                        n.id,
                        n.details.event_id,
                        n.own_event
                    );
                    self.notices.push(n);
                }
                Output::Status(s) => {
                    if matches!(s, SyncStatus::OutOfSync { reason: OutOfSyncReason::VersionGap { .. } }) {
                        self.stats.version_gaps += 1;
                    }
                    log!(self, "{name}: status {}", status_str(&s))
                }
                Output::ContextChanged(c) => {
                    log!(self, "{name}: shows {:?}", c.map(|c| c.anchor.to_string()))
                }
                Output::Post(ev) => {
                    log!(self, "{name}: follower POSTs {}", ev_str(&ev));
                    self.post(i, ev);
                }
                Output::FetchCurrentContext => {
                    log!(self, "{name}: GET current context");
                    self.http_request(i, Req::Get);
                }
                Output::Resubscribe { reason } => {
                    log!(self, "{name}: resubscribe ({reason})");
                    self.nodes[i].conn = Conn::Down;
                    self.nodes[i].delivered.clear();
                    self.schedule_reconnect(i);
                }
                Output::Published { id } => log!(self, "{name}: published {id}"),
                Output::PublishFailed { id, status, message } => {
                    log!(self, "{name}: publish {id} failed {status}: {message}")
                }
            }
        }
    }
}

/// The anchor of a snapshot as it comes (unfiltered).
fn snapshot_anchor(cc: &CurrentContext) -> Option<ResourceKey> {
    if cc.context_type.is_empty() {
        return None;
    }
    let h = cc.context.iter().find_map(|e| e.resource_header().filter(|h| h.resource_type == cc.context_type))?;
    Some(ResourceKey::new(h.resource_type, h.id?))
}
