//! The network (WebSockets, HTTP) and the shells that pump the state machines onto it: the
//! Hub's, and each app's, which performs its [`Subscriber`]'s actions and reports back.

use fhircast_core::subscriber::{Action, StartFailure};

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
                Req::Subscribe { request, .. } => Resp::Subscribed { request, result: Err("network error".into()) },
                Req::Renew { request, .. } => Resp::Renewed { request, result: Err((0, "network error".into())) },
                Req::Unsubscribe { .. } => Resp::Unsubscribed(Err("network error".into())),
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
                Resp::Subscribed { request, .. } => Resp::Subscribed { request, result: Err("network error".into()) },
                Resp::Renewed { request, .. } => Resp::Renewed { request, result: Err((0, "network error".into())) },
                Resp::Unsubscribed(_) => Resp::Unsubscribed(Err("network error".into())),
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
            Req::Subscribe { request, form } => {
                let r = Self::form(&name, &form)?;
                self.next_token += 1;
                let token = format!("tok{}", self.next_token);
                let result = self.hub.handle_subscription(&r, &Auth::open(), &token, self.now);
                log!(self, "hub: subscribe from {name}: {result:?}");
                let result = result.map(|a| format!("{HUB_URL}{}", a.endpoint)).map_err(|e| error_text(&e));
                self.route()?;
                self.http_response(node, gen, Resp::Subscribed { request, result });
            }
            Req::Renew { request, form } => {
                let r = Self::form(&name, &form)?;
                self.next_token += 1;
                let token = format!("tok{}", self.next_token);
                let result = self.hub.handle_subscription(&r, &Auth::open(), &token, self.now);
                log!(self, "hub: renewal from {name} for {:?}: {result:?}", r.endpoint);
                let result = result.map(|_| ()).map_err(|e| (e.http_status(), e.to_string()));
                self.route()?;
                self.http_response(node, gen, Resp::Renewed { request, result });
            }
            Req::Unsubscribe { form } => {
                let r = Self::form(&name, &form)?;
                let result = self.hub.handle_subscription(&r, &Auth::open(), "unused", self.now);
                log!(self, "hub: unsubscribe from {name}: {result:?}");
                let result = result.map(|_| ()).map_err(|e| error_text(&e));
                self.route()?;
                self.http_response(node, gen, Resp::Unsubscribed(result));
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
            Resp::Subscribed { request, result } => {
                log!(self, "{name}: subscribe answered {result:?}");
                self.nodes[node].sub.handle_subscribed(request, result.map_err(ShellError), local);
                self.drain_node(node)?;
            }
            Resp::Renewed { request, result } => {
                log!(self, "{name}: renewal answered {result:?}");
                let result = result.map_err(|(status, e)| (status, ShellError(e)));
                self.nodes[node].sub.handle_renewed(request, result, local);
                self.drain_node(node)?;
            }
            Resp::Unsubscribed(result) => {
                log!(self, "{name}: unsubscribe answered {result:?}");
                self.nodes[node].sub.handle_unsubscribed(result.map_err(ShellError), local);
                self.drain_node(node)?;
            }
            Resp::Posted { id, result } => {
                log!(self, "{name}: POST {id} answered {result:?}");
                if result.is_err() && self.has(Features::OWN) {
                    self.nodes[node].post_failed.insert(id.clone());
                }
                self.nodes[node].f_mut().handle_post_result(&id, result, local);
                self.drain_node(node)?;
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
                        let n = &mut self.nodes[node];
                        n.snapshot_step = Some(step);
                        n.f_mut().handle_snapshot(&cc, local);
                        let shown = n.shown();
                        if let Some(app) = n.app.as_mut().filter(|a| a.lie == Lie::UnfilteredSnapshot) {
                            app.raw_snapshot = Some((snapshot_anchor(&cc), shown));
                        }
                    }
                    Err(e) => {
                        log!(self, "{name}: GET failed: {e}");
                        self.nodes[node].f_mut().handle_snapshot_failed(&e, local);
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
        let (tag, gen) = (s.tag, s.gen);
        let name = self.nodes[node].name.clone();
        if self.nodes[node].sock != Some(sock) || self.nodes[node].gen != gen {
            log!(self, "hub -> {name} WS (a socket its shell closed or dropped, ignored): {}", msg_str(&msg));
            if let DownMsg::Close(_) = msg {
                self.sockets[sock].node_knows_end = true;
            }
            return Ok(());
        }
        let local = self.nodes[node].local(self.now);
        match msg {
            DownMsg::Close(code) => {
                self.sockets[sock].node_knows_end = true;
                let token = self.sockets[sock].token.clone();
                log!(self, "hub -> {name} WS: close {code}");
                // The close handshake completes at the Hub too.
                self.hub.handle_close(&token, code, self.now);
                self.route()?;
                self.nodes[node].sock = None;
                self.nodes[node].sub.handle_socket_closed(tag, code, "", local);
                self.drain_node(node)
            }
            DownMsg::Text(text) => {
                log!(self, "hub -> {name} WS: {}", text_str(&text));
                let n = &mut self.nodes[node];
                let before = n.shown();
                if let Err(e) = n.sub.handle_socket_text(tag, &text, local) {
                    return fail("protocol", format!("{name} cannot read a hub message: {e}"));
                }
                if n.app.is_none() {
                    return self.drain_node(node); // a zombie: never answers
                }
                if n.shown() != before {
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

    /// The shell learns that its socket broke (1006), or that the upgrade was refused.
    pub(super) fn node_detects(&mut self, sock: usize) -> Res {
        let s = &mut self.sockets[sock];
        let (node, tag, gen) = (s.node, s.tag, s.gen);
        s.node_knows_end = true;
        if self.nodes[node].sock != Some(sock) || self.nodes[node].gen != gen {
            log!(self, "{}: (old socket broke)", self.nodes[node].name);
            return Ok(());
        }
        log!(self, "{}: socket lost (1006)", self.nodes[node].name);
        let local = self.nodes[node].local(self.now);
        self.nodes[node].sock = None;
        self.nodes[node].sub.handle_socket_closed(tag, 1006, "", local);
        self.drain_node(node)
    }

    /// The app's end closes `sock` with 1000 (its shell dropped or closed it, or the app
    /// reloads); the close reaches the Hub behind the acks.
    pub(super) fn close_from_app(&mut self, sock: usize) {
        self.sockets[sock].node_knows_end = true;
        if !self.sockets[sock].broken {
            let d = self.rng.delay(1, 300, 3000);
            let s = &mut self.sockets[sock];
            let at = s.up_last.max(self.now.add(d));
            s.up_last = at;
            self.schedule_at(at, Ev::UpClose { sock });
        }
    }

    /// The app (of generation `gen`) calls `connect()`.
    pub(super) fn start(&mut self, node: usize, gen: u64) -> Res {
        if self.nodes[node].gen != gen {
            return Ok(()); // reloaded since
        }
        log!(self, "{}: app connects", self.nodes[node].name);
        let local = self.nodes[node].local(self.now);
        self.nodes[node].sub.start(local);
        self.drain_node(node)
    }

    /// The subscription form a shell POSTed, as the Hub's shell reads it.
    fn form(name: &str, form: &str) -> Res<SubscriptionRequest> {
        SubscriptionRequest::from_form(form)
            .or_else(|e| fail("protocol", format!("the hub cannot read {name}'s subscription form {form:?}: {e}")))
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

    /// Pumps a subscriber's actions: its POSTs over HTTP, its socket, and its follower's outputs
    /// (acks onto the socket, POSTs and GETs over HTTP, app callbacks). A zombie's shell passes
    /// none of the follower's outputs on, and does not subscribe again in the quiet period.
    pub(super) fn drain_node(&mut self, i: usize) -> Res {
        let mut start_failed = false;
        loop {
            let local = self.nodes[i].local(self.now);
            let Some(action) = self.nodes[i].sub.poll_action(local) else { break };
            let name = self.nodes[i].name.clone();
            let zombie = self.nodes[i].app.is_none();
            match action {
                Action::Subscribe { .. } if zombie && self.quiet => {
                    log!(self, "{name}: (a zombie: does not come back in the quiet period)");
                }
                Action::Subscribe { form, request } => {
                    self.stats.reconnects += 1;
                    log!(self, "{name}: shell subscribes (request {request})");
                    self.http_request(i, Req::Subscribe { request, form });
                }
                Action::Renew { form, request } => {
                    self.stats.renewals += 1;
                    log!(self, "{name}: shell renews the lease (request {request})");
                    self.http_request(i, Req::Renew { request, form });
                }
                Action::OpenSocket { endpoint, socket } => {
                    let Some(token) = endpoint.strip_prefix(HUB_URL) else {
                        return fail("protocol", format!("{name} was told to open {endpoint}, not a Hub endpoint"));
                    };
                    log!(self, "{name}: opening the WebSocket {token}");
                    let sock = self.sockets.len();
                    self.sockets.push(Socket {
                        node: i,
                        gen: self.nodes[i].gen,
                        tag: socket,
                        token: token.to_owned(),
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
                    self.token_sock.insert(token.to_owned(), sock);
                    self.nodes[i].sock = Some(sock);
                    let d = self.rng.delay(5, 300, 2000);
                    self.schedule(d, Ev::WsOpen { sock });
                }
                Action::DropSocket | Action::CloseSocket => {
                    if let Some(sock) = self.nodes[i].sock.take() {
                        log!(self, "{name}: shell closes socket {}", self.sockets[sock].token);
                        self.close_from_app(sock);
                    }
                }
                Action::Unsubscribe { form } => {
                    log!(self, "{name}: shell unsubscribes");
                    self.http_request(i, Req::Unsubscribe { form });
                }
                Action::Started => log!(self, "{name}: connected (first confirmation)"),
                Action::StartFailed(f) => {
                    self.stats.start_failures += 1;
                    let why = match f {
                        StartFailure::Shell(e) => e.0,
                        StartFailure::Denied(r) => format!("denied: {r}"),
                        StartFailure::ClosedEarly { code, reason } => format!("closed early {code} {reason}"),
                        StartFailure::Closed => "closed".into(),
                    };
                    log!(self, "{name}: the first connection failed ({why})");
                    start_failed = true;
                }
                Action::Closed { problem } => log!(self, "{name}: closed ({problem:?})"),
                Action::Follower(_) if zombie => {}
                Action::Follower(out) => self.output(i, out)?,
            }
        }
        if start_failed && !(self.nodes[i].app.is_none() && self.quiet) {
            // `connect()` rejected: the app calls it again, on a new client.
            let seed = self.rng.next();
            self.nodes[i].fresh(seed);
            let gen = self.nodes[i].gen;
            let d = self.rng.ms(100, 1000);
            self.schedule(d, Ev::Start { node: i, gen });
        }
        Ok(())
    }

    /// What the follower asks for.
    fn output(&mut self, i: usize, out: Output) -> Res {
        let name = self.nodes[i].name.clone();
        match out {
            Output::Send(text) => {
                let Some(sock) = self.nodes[i].sock else {
                    log!(self, "{name}: ack {text} dropped (no socket)");
                    return Ok(());
                };
                if self.sockets[sock].broken {
                    log!(self, "{name} -> hub WS {text}: into a broken socket");
                    return Ok(());
                }
                let d = self.rng.delay(1, 300, 3000);
                let s = &mut self.sockets[sock];
                let at = s.up_last.max(self.now.add(d));
                s.up_last = at;
                self.schedule_at(at, Ev::Up { sock, text });
            }
            Output::Deliver(ev) => self.deliver(i, ev)?,
            Output::SyncError(n) => {
                log!(self, "{name}: app told SyncError {} about {} (own={})", n.id, n.details.event_id, n.own_event);
                self.notices.push(n);
            }
            Output::Status(s) => {
                match s {
                    SyncStatus::OutOfSync { reason: OutOfSyncReason::VersionGap { .. } } => {
                        self.stats.version_gaps += 1
                    }
                    // The notifications it was deciding about are gone with the connection.
                    SyncStatus::Disconnected { .. } => self.nodes[i].delivered.clear(),
                    _ => {}
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
                return fail("protocol", format!("{name}'s subscriber passed a Resubscribe ({reason}) on"));
            }
            Output::Published { id } => log!(self, "{name}: published {id}"),
            Output::PublishFailed { id, status, message } => {
                log!(self, "{name}: publish {id} failed {status}: {message}")
            }
        }
        Ok(())
    }
}

/// The text of a subscription refusal, with its status (the shell's error).
fn error_text(e: &fhircast_core::hub::SubscribeError) -> String {
    format!("{}: {e}", e.http_status())
}

/// The anchor of a snapshot as it comes (unfiltered).
fn snapshot_anchor(cc: &CurrentContext) -> Option<ResourceKey> {
    if cc.context_type.is_empty() {
        return None;
    }
    let h = cc.context.iter().find_map(|e| e.resource_header().filter(|h| h.resource_type == cc.context_type))?;
    Some(ResourceKey::new(h.resource_type, h.id?))
}
