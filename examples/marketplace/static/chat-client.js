// chat-client.js: the reference browser client of the messaging server (docs/protocol.md).
// One plain ES module, no build step. It talks to the chat routes at `base`: a WebSocket
// on `${base}/v1/ws`, or, when that is refused, the HTTP routes plus the event stream
// `${base}/v1/events`. Two ways to authenticate:
//
// - the host app's cookie, when the routes are mounted in it (same origin):
//     const chat = new ChatClient({ base: "/chat", userId: me.id });
// - a JWT, for the standalone server, on any origin its --cors-origin allows; `token` may
//   be a function (async or not), called on every connect, so a refreshed token is used:
//     const chat = new ChatClient({ base: "https://chat.example.com", userId, token: fetchToken });
//
//   chat.addEventListener("message.created", (e) => show(e.detail.message));
//   chat.start();
//   await chat.send(conversationId, "hi");
//
// Events (CustomEvent, the push's `data` in `detail`): every event name of the protocol
// (`message.created`, `receipt.read`, `typing`, `presence`, …), once each (deduplicated
// by cursor, and `message.created` by message id); `status` ({state: "connecting" |
// "online" | "offline" | "stopped", transport: "ws" | "sse"}); `reset` when there was no
// stored cursor to resume from (reload the conversations); `unauthorized` (log in again).

/** A failed operation: `code` is the protocol's error code. */
export class ChatError extends Error {
  constructor(code, message) {
    super(message || code);
    this.code = code;
  }
}

const SSE_EVENTS = [
  "conversation.created", "conversation.updated", "message.created", "message.edited",
  "message.deleted", "receipt.read", "receipt.delivered", "reaction.added",
  "reaction.removed", "member.updated", "typing", "presence",
];
const HELLO_TIMEOUT_MS = 10_000; // how long a new WebSocket may stay silent
const SEEN_MAX = 2000; // how many cursors / message ids are remembered for deduplication

let counter = 0;
/** A fresh `client_msg_id` (≤ 64 bytes). */
export function newClientMsgId() {
  counter += 1;
  const random = globalThis.crypto?.randomUUID?.() ?? `${Date.now()}-${Math.random()}`;
  return `c-${random}-${counter}`;
}

export class ChatClient extends EventTarget {
  /**
   * @param {object} options
   * @param {string} options.userId   the logged-in user (the cursor is stored per user)
   * @param {string} [options.base]   where the chat routes are: a path of this origin
   *   ("/chat") or another origin ("https://chat.example.com")
   * @param {string|(() => string|Promise<string>)} [options.token] a JWT, or what gives
   *   one; without it the browser's cookies authenticate
   * @param {"auto"|"ws"|"sse"} [options.transport]
   * @param {Storage} [options.storage] where the cursor is kept (localStorage)
   */
  constructor({ userId, base = "/chat", token = null, transport = "auto", storage = globalThis.localStorage }) {
    super();
    this.userId = userId;
    this.base = base.replace(/\/+$/, "");
    this.tokenSource = token == null ? null : typeof token === "function" ? token : () => token;
    this.token = null; // the one of the current connection
    this.authRetried = false; // a 401 is retried once with a fresh token
    this.generation = 0; // which connect() is current (a token may take a while)
    this.transport = transport === "sse" ? "sse" : "ws";
    this.fixedTransport = transport !== "auto";
    this.storage = storage;
    this.cursorKey = `chat.cursor.${userId}`;
    this.state = "stopped";
    this.ws = null;
    this.es = null;
    this.nextId = 1;
    this.waiting = new Map(); // request id → {resolve, reject}
    this.pendingSends = new Map(); // client_msg_id → {params, resolve, reject}
    this.seen = new Set();
    this.attempt = 0;
    this.timer = null;
    this.pinger = null;
    this.limits = null;
    this.readyWaiters = [];
    this.onOnline = () => this.state === "offline" && this.reconnectNow();
    // The browser knows it lost the network before any heartbeat could tell: drop the
    // connection now, so sends queue visibly, and come back on `online`.
    this.onOffline = () => this.state !== "stopped" && this.scheduleReconnect();
  }

  // ---- lifecycle ------------------------------------------------------------------------

  /** Connects, and keeps connecting until `stop()`. */
  start() {
    if (this.state !== "stopped") return;
    globalThis.addEventListener?.("online", this.onOnline);
    globalThis.addEventListener?.("offline", this.onOffline);
    this.connect();
  }

  /** Disconnects for good; requests waiting fail with `unavailable`. */
  stop() {
    globalThis.removeEventListener?.("online", this.onOnline);
    globalThis.removeEventListener?.("offline", this.onOffline);
    this.setState("stopped");
    this.teardown();
    for (const send of this.pendingSends.values()) send.reject(new ChatError("unavailable", "stopped"));
    this.pendingSends.clear();
    for (const w of this.readyWaiters) w.reject(new ChatError("unavailable", "stopped"));
    this.readyWaiters = [];
  }

  get cursor() {
    return this.storage?.getItem(this.cursorKey) ?? null;
  }

  set cursor(value) {
    this.storage?.setItem(this.cursorKey, value);
  }

  setState(state) {
    this.state = state;
    this.emit("status", { state, transport: this.transport });
    if (state === "online") {
      for (const w of this.readyWaiters) w.resolve();
      this.readyWaiters = [];
    }
  }

  ready() {
    if (this.state === "online") return Promise.resolve();
    if (this.state === "stopped") return Promise.reject(new ChatError("unavailable", "stopped"));
    return new Promise((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
  }

  async connect() {
    this.teardown();
    const generation = ++this.generation;
    if (globalThis.navigator?.onLine === false) {
      // Nothing to try while the browser says it has no network: `online` calls us back.
      this.setState("offline");
      return;
    }
    this.setState("connecting");
    if (this.tokenSource) {
      try {
        this.token = await this.tokenSource();
      } catch {
        if (generation === this.generation) this.scheduleReconnect();
        return;
      }
      if (generation !== this.generation || this.state === "stopped") return;
    }
    if (this.transport === "ws") this.connectWs();
    else this.connectSse();
  }

  /** `${base}/v1${path}` as an absolute URL, with `?access_token=` for streams if asked. */
  url(path, { stream = false, scheme = null } = {}) {
    const url = new URL(`${this.base}/v1${path}`, globalThis.location?.href);
    if (scheme) url.protocol = url.protocol === "https:" ? `${scheme}s:` : `${scheme}:`;
    if (stream && this.token) url.searchParams.set("access_token", this.token);
    return url;
  }

  /** fetch() with the connection's credentials: the token, else same-origin cookies. */
  fetch(url, init = {}) {
    const headers = { ...init.headers };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    return fetch(url, { credentials: "same-origin", ...init, headers });
  }

  teardown() {
    clearTimeout(this.timer);
    clearInterval(this.pinger);
    if (this.ws) {
      this.ws.onopen = this.ws.onmessage = this.ws.onclose = this.ws.onerror = null;
      this.ws.close();
      this.ws = null;
    }
    if (this.es) {
      this.es.close();
      this.es = null;
    }
    // Requests on the old connection will never be answered; sends are kept and re-sent.
    for (const [id, w] of this.waiting) {
      this.waiting.delete(id);
      w.reject(new ChatError("unavailable", "disconnected"));
    }
  }

  /** Exponential backoff with full jitter: 0.5 s doubling to 30 s. */
  scheduleReconnect() {
    if (this.state === "stopped") return;
    this.teardown();
    this.setState("offline");
    const ceiling = Math.min(30_000, 500 * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 16);
    this.timer = setTimeout(() => this.connect(), Math.random() * ceiling);
  }

  reconnectNow() {
    clearTimeout(this.timer);
    this.connect();
  }

  /** A connection failed before it said hello: logged out, refused, or the server down? */
  async diagnose() {
    let status = 0;
    try {
      status = (await this.fetch(this.url("/unread"))).status;
    } catch {
      status = 0; // network down
    }
    if (status === 401) {
      if (this.tokenSource && !this.authRetried) {
        this.authRetried = true; // an expired token: ask for a fresh one, once
        this.connect();
        return;
      }
      this.stop();
      this.emit("unauthorized", {});
      return;
    }
    // HTTP answers but the WebSocket does not (a proxy without upgrades): use SSE.
    if (status === 200 && this.transport === "ws" && !this.fixedTransport) {
      this.transport = "sse";
      this.attempt = 0;
      this.connect();
      return;
    }
    this.scheduleReconnect();
  }

  // ---- WebSocket ----------------------------------------------------------------------

  connectWs() {
    const ws = new WebSocket(this.url("/ws", { stream: true, scheme: "ws" }));
    this.ws = ws;
    let hello = false;
    let buffered = null; // pushes that arrive while the gap is synced
    // A server (or a proxy) that accepts the connection but never says hello is as good as
    // down: give up on it and diagnose.
    const silent = setTimeout(() => this.ws === ws && !hello && ws.onclose({ code: 1006 }), HELLO_TIMEOUT_MS);
    ws.onmessage = async (message) => {
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return;
      }
      if (frame.type === "hello") {
        hello = true;
        clearTimeout(silent);
        this.limits = frame.limits;
        buffered = [];
        try {
          await this.resumeWs(frame.cursor);
        } catch {
          if (this.ws === ws) this.scheduleReconnect();
          return;
        }
        const later = buffered;
        buffered = null;
        for (const event of later) this.deliver(event);
        this.attempt = 0;
        this.authRetried = false;
        this.startPinger(frame.heartbeat_s);
        this.setState("online");
        this.resendPending();
      } else if (frame.type === "reply") {
        const w = this.waiting.get(frame.id);
        if (!w) return;
        this.waiting.delete(frame.id);
        if (frame.ok) w.resolve(frame.data);
        else w.reject(new ChatError(frame.error?.code, frame.error?.message));
      } else if (frame.type === "event") {
        if (buffered) buffered.push(frame);
        else this.deliver(frame);
      }
    };
    // Browsers fire `close` (1006) after a failed handshake's `error`; some runtimes only
    // `error`: either one ends the attempt, once.
    ws.onerror = () => ws.onclose({ code: 1006 });
    ws.onclose = (close) => {
      clearTimeout(silent);
      if (this.ws !== ws) return;
      if (close.code === 4001) {
        // revoked: the session is over, as is the login
        this.stop();
        this.emit("unauthorized", { revoked: true });
      } else if (!hello) {
        this.teardown();
        this.diagnose();
      } else {
        this.scheduleReconnect();
      }
    };
  }

  /** Fills the gap since the stored cursor with `sync` pages, up to `helloCursor`. */
  async resumeWs(helloCursor) {
    let cursor = this.cursor;
    if (!cursor) {
      this.cursor = helloCursor;
      this.emit("reset", {});
      return;
    }
    for (;;) {
      let page;
      try {
        page = await this.wsRequest("sync", { cursor, limit: 200 });
      } catch (error) {
        if (error.code === "bad_request") {
          // a cursor this server never issued (another database): start over
          this.cursor = helloCursor;
          this.emit("reset", {});
          return;
        }
        throw error;
      }
      for (const event of page.events) this.deliver(event);
      cursor = page.cursor;
      this.cursor = cursor;
      if (!page.has_more) return;
    }
  }

  /** The `ping` op every heartbeat: a server that does not answer is reconnected to. */
  startPinger(heartbeatS) {
    const every = Math.max(5, heartbeatS || 25) * 1000;
    this.pinger = setInterval(() => {
      const ws = this.ws;
      const late = setTimeout(() => this.ws === ws && this.scheduleReconnect(), every);
      this.wsRequest("ping", {}).then(() => clearTimeout(late), () => clearTimeout(late));
    }, every);
  }

  wsRequest(op, params) {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new ChatError("unavailable", "not connected"));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      ws.send(JSON.stringify({ id, op, ...params }));
    });
  }

  // ---- SSE + HTTP ---------------------------------------------------------------------

  connectSse() {
    const url = this.url("/events", { stream: true });
    if (this.cursor) url.searchParams.set("cursor", this.cursor);
    const es = new EventSource(url);
    this.es = es;
    let hello = false;
    es.addEventListener("hello", (message) => {
      hello = true;
      const data = JSON.parse(message.data);
      this.limits = data.limits;
      if (!this.cursor) {
        this.cursor = data.cursor;
        this.emit("reset", {});
      }
      this.attempt = 0;
      this.authRetried = false;
      this.setState("online");
      this.resendPending();
    });
    for (const name of SSE_EVENTS) {
      es.addEventListener(name, (message) => {
        // An ephemeral event has no id, but `lastEventId` keeps the previous one.
        const durable = name !== "typing" && name !== "presence";
        const cursor = durable && message.lastEventId ? message.lastEventId : undefined;
        this.deliver({ event: name, cursor, data: JSON.parse(message.data) });
      });
    }
    es.onerror = () => {
      if (this.es !== es) return;
      // EventSource retries by itself (with Last-Event-ID) unless the server answered
      // an error status; then it is closed and we decide.
      if (es.readyState === EventSource.CLOSED || !hello) {
        this.teardown();
        if (!hello) this.diagnose();
        else this.scheduleReconnect();
      } else {
        this.setState("connecting");
      }
    };
  }

  async httpRequest(op, params) {
    const [method, path, query, body] = route(op, params);
    const url = this.url(path);
    for (const [k, v] of Object.entries(query || {})) if (v != null) url.searchParams.set(k, String(v));
    let response;
    try {
      response = await this.fetch(url, {
        method,
        headers: body ? { "Content-Type": "application/json" } : {},
        body: body ? JSON.stringify(body) : undefined,
      });
    } catch {
      throw new ChatError("unavailable", "network error");
    }
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      if (response.status === 401) {
        if (this.tokenSource) {
          // The token expired under us: reconnecting asks for a fresh one (and gives up
          // with `unauthorized` if that is refused too); sends wait and go again.
          this.reconnectNow();
          throw new ChatError("unavailable", "the token was refused");
        }
        this.stop();
        this.emit("unauthorized", {});
      }
      throw new ChatError(answer.error?.code || "internal", answer.error?.message);
    }
    return answer;
  }

  // ---- events -------------------------------------------------------------------------

  deliver(frame) {
    const { event, cursor, data } = frame;
    if (cursor) {
      if (this.seen.has(cursor)) return;
      this.remember(cursor);
    }
    if (event === "message.created") {
      const key = `m:${data.message.id}`;
      if (this.seen.has(key)) {
        // Seen in a send's reply: not shown again, but the stream has moved past it.
        if (cursor) this.cursor = cursor;
        return;
      }
      this.remember(key);
    }
    this.emit(event, data);
    // Stored after the page has seen it: a reload resumes after what was shown.
    if (cursor) this.cursor = cursor;
  }

  remember(key) {
    this.seen.add(key);
    if (this.seen.size > SEEN_MAX) this.seen.delete(this.seen.values().next().value);
  }

  emit(name, detail) {
    this.dispatchEvent(new CustomEvent(name, { detail }));
  }

  // ---- requests -----------------------------------------------------------------------

  /** Runs `op` once connected, over whichever transport is up: its `data`. */
  async request(op, params = {}) {
    await this.ready();
    return this.transport === "ws" ? this.wsRequest(op, params) : this.httpRequest(op, params);
  }

  /** A send survives reconnects: it is sent again (same client_msg_id) until answered. */
  sendWithRetry(params) {
    const withId = { client_msg_id: newClientMsgId(), ...params };
    return new Promise((resolve, reject) => {
      this.pendingSends.set(withId.client_msg_id, { params: withId, resolve, reject });
      if (this.state === "online") this.trySend(withId.client_msg_id);
    });
  }

  trySend(key) {
    const pending = this.pendingSends.get(key);
    if (!pending || pending.inFlight) return;
    pending.inFlight = true;
    const run = this.transport === "ws" ? this.wsRequest("send", pending.params)
      : this.httpRequest("send", pending.params);
    run.then((data) => {
      this.pendingSends.delete(key);
      if (data.message) this.remember(`m:${data.message.id}`);
      pending.resolve(data);
    }, (error) => {
      pending.inFlight = false;
      // unavailable: maybe stored, maybe not; the same client_msg_id again tells. While
      // connected, that is a second later; else after the reconnect (resendPending).
      if (error.code !== "unavailable" && error.code !== "rate_limited") {
        this.pendingSends.delete(key);
        pending.reject(error);
      } else if (this.state === "online") {
        setTimeout(() => this.state === "online" && this.trySend(key), 1000);
      }
    });
  }

  resendPending() {
    for (const key of this.pendingSends.keys()) this.trySend(key);
  }

  /** Sends not yet acknowledged, for the page to show as pending. */
  get unacknowledged() {
    return [...this.pendingSends.values()].map((p) => p.params);
  }

  // ---- the operations ---------------------------------------------------------------------

  open(peer, context) { return this.request("open", { peer, context }); }
  /** `options`: attachments, reply_to_seq, metadata, client_msg_id. */
  send(conversationId, body, options = {}) {
    return this.sendWithRetry({ conversation_id: conversationId, body, ...options });
  }
  sendTo(peer, context, body, options = {}) {
    return this.sendWithRetry({ peer, context, body, ...options });
  }
  /** `options`: before_seq, after_seq, limit. */
  history(conversationId, options = {}) {
    return this.request("history", { conversation_id: conversationId, ...options });
  }
  /** `options`: limit, before, archived, context. */
  conversations(options = {}) { return this.request("conversations", options); }
  conversation(conversationId) { return this.request("conversation", { conversation_id: conversationId }); }
  read(conversationId, upToSeq) {
    return this.request("read", { conversation_id: conversationId, up_to_seq: upToSeq });
  }
  delivered(conversationId, upToSeq) {
    return this.request("delivered", { conversation_id: conversationId, up_to_seq: upToSeq });
  }
  typing(conversationId, state) { return this.request("typing", { conversation_id: conversationId, state }); }
  react(messageId, emoji, state = "added") { return this.request("react", { message_id: messageId, emoji, state }); }
  edit(messageId, body) { return this.request("edit", { message_id: messageId, body }); }
  delete(messageId) { return this.request("delete", { message_id: messageId }); }
  unread() { return this.request("unread"); }
  presence(userIds) { return this.request("presence", { user_ids: userIds }); }
  search(query, options = {}) { return this.request("search", { query, ...options }); }
  mute(conversationId, until) { return this.request("mute", { conversation_id: conversationId, until }); }
  archive(conversationId, archived) { return this.request("archive", { conversation_id: conversationId, archived }); }
}

const enc = encodeURIComponent;

/** An op's HTTP route (docs/protocol.md, "HTTP API"): [method, path, query, body]. */
function route(op, p) {
  const c = p.conversation_id && `/conversations/${enc(p.conversation_id)}`;
  switch (op) {
    case "open": return ["POST", "/conversations", null, { peer: p.peer, context: p.context }];
    case "send": {
      const { conversation_id: _, ...body } = p;
      return ["POST", c ? `${c}/messages` : "/messages", null, body];
    }
    case "history":
      return ["GET", `${c}/messages`, { before_seq: p.before_seq, after_seq: p.after_seq, limit: p.limit }];
    case "conversations":
      return ["GET", "/conversations", { limit: p.limit, before: p.before, archived: p.archived, context: p.context }];
    case "conversation": return ["GET", c];
    case "read": case "delivered": return ["POST", `${c}/${op}`, null, { up_to_seq: p.up_to_seq }];
    case "typing": return ["POST", `${c}/typing`, null, { state: p.state }];
    case "mute": return ["POST", `${c}/mute`, null, { until: p.until }];
    case "archive": return ["POST", `${c}/archive`, null, { archived: p.archived }];
    case "react":
      return p.state === "removed"
        ? ["DELETE", `/messages/${enc(p.message_id)}/reactions/${enc(p.emoji)}`]
        : ["POST", `/messages/${enc(p.message_id)}/reactions`, null, { emoji: p.emoji }];
    case "edit": return ["PATCH", `/messages/${enc(p.message_id)}`, null, { body: p.body }];
    case "delete": return ["DELETE", `/messages/${enc(p.message_id)}`];
    case "unread": return ["GET", "/unread"];
    case "presence": return ["GET", "/presence", { user_ids: p.user_ids.join(",") }];
    case "search": return ["GET", "/search", { query: p.query, conversation_id: p.conversation_id, limit: p.limit }];
    case "sync": return ["GET", "/sync", { cursor: p.cursor, limit: p.limit }];
    case "ping": return ["GET", "/unread"];
    default: throw new ChatError("bad_request", `unknown op ${op}`);
  }
}
