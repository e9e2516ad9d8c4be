// chat-client.js: the reference browser client of the messaging server (docs/protocol.md,
// "Writing a client"). One plain ES module, no build step. It talks to the chat routes at
// `base`: a WebSocket on `${base}/v1/ws`, or, when that is refused (or the browser has no
// usable `WebSocket`), the HTTP routes plus the event stream `${base}/v1/events`. Two ways
// to authenticate:
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
// usable cursor to resume from (reload the conversations, and the open one's messages);
// `unauthorized` (log in again); `pending` when the list of unacknowledged sends changes.
//
// A message this client sent comes as `message.created` too, once, whichever of the
// server's answer and the event arrives first: from the answer when that is first (the
// event is then dropped). So a send taken over from a previous page, which nobody awaits,
// still reaches the page. (Once per page load: an answer carries no cursor, so a page
// reloaded between the answer and the event is given the event again. A send answered
// `created: false`, stored by an earlier attempt, is left to its event.)
//
// What it keeps in `storage` (localStorage), per user: the cursor of the last event the
// page was given (a reload resumes after it) and the sends not yet acknowledged (a reload
// sends them again, with the same client_msg_id, so each is stored once).

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
const REQUEST_TIMEOUT_MS = 15_000; // an HTTP request, a WebSocket request, the token
const WS_REFUSALS_BEFORE_SSE = 2; // WebSocket refused while HTTP works: then use SSE
const SEEN_MAX = 2000; // how many cursors / message ids are remembered for deduplication
const RETRYABLE = new Set(["unavailable", "rate_limited", "timeout"]);

let counter = 0;
/** A fresh `client_msg_id` (≤ 64 bytes). */
export function newClientMsgId() {
  counter += 1;
  const random = globalThis.crypto?.randomUUID?.() ?? `${Date.now()}-${Math.random()}`;
  return `c-${random}-${counter}`;
}

/** `promise`, or a `timeout` ChatError after `ms`. */
function within(promise, ms, what) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new ChatError("timeout", `${what} took longer than ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

export class ChatClient extends EventTarget {
  /**
   * @param {object} options
   * @param {string} options.userId   the logged-in user (what is stored is per user)
   * @param {string} [options.base]   where the chat routes are: a path of this origin
   *   ("/chat") or another origin ("https://chat.example.com")
   * @param {string|(() => string|Promise<string>)} [options.token] a JWT, or what gives
   *   one; without it the browser's cookies authenticate
   * @param {"auto"|"ws"|"sse"} [options.transport]
   * @param {Storage} [options.storage] where the cursor and unsent messages are kept
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
    this.wsRefusals = 0;
    this.storage = storage;
    this.cursorKey = `chat.cursor.${userId}`;
    // Each tab keeps its unsent messages under its own key (tabs would overwrite one
    // list), and a starting client takes over every key of its user: a tab closed with
    // sends pending hands them to the next one. Two tabs sending the same message is
    // harmless: the client_msg_id makes the second a no-op.
    this.pendingPrefix = `chat.pending.${userId}.`;
    this.pendingKey = `${this.pendingPrefix}${newClientMsgId()}`;
    // This client's own place in the stream. Other tabs of the same user write the stored
    // copy too; each tab resumes from what it handled itself.
    this.position = null;
    this.state = "stopped";
    this.ws = null;
    this.es = null;
    this.nextId = 1;
    this.waiting = new Map(); // request id → {resolve, reject}
    this.pendingSends = new Map(); // client_msg_id → {params, resolve, reject}, in send order
    this.sending = null; // the client_msg_id in flight: one at a time, so order is kept
    this.retryTimer = null;
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

  /** Connects, and keeps connecting until `stop()`. Sends a previous page left unsent go first. */
  start() {
    if (this.state !== "stopped") return;
    this.position = this.storedCursor;
    this.restorePending();
    globalThis.addEventListener?.("online", this.onOnline);
    globalThis.addEventListener?.("offline", this.onOffline);
    this.state = "offline";
    this.connect();
  }

  /**
   * Disconnects for good; waiting requests and sends fail with `unavailable`. Unsent
   * messages stay stored for the next start unless `discardUnsent` (a logout).
   */
  stop({ discardUnsent = false } = {}) {
    globalThis.removeEventListener?.("online", this.onOnline);
    globalThis.removeEventListener?.("offline", this.onOffline);
    this.generation += 1;
    this.setState("stopped");
    this.teardown();
    clearTimeout(this.retryTimer);
    for (const send of this.pendingSends.values()) send.reject(new ChatError("unavailable", "stopped"));
    this.pendingSends.clear();
    this.sending = null;
    if (discardUnsent) this.storage?.removeItem(this.pendingKey);
    for (const w of this.readyWaiters) w.reject(new ChatError("unavailable", "stopped"));
    this.readyWaiters = [];
  }

  get storedCursor() {
    return this.storage?.getItem(this.cursorKey) ?? null;
  }

  /** The stream position this client has handled (kept, and stored for a reload). */
  get cursor() {
    return this.position;
  }

  set cursor(value) {
    this.position = value;
    if (value == null) this.storage?.removeItem(this.cursorKey);
    else this.storage?.setItem(this.cursorKey, value);
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
    if (this.state === "stopped") return;
    this.teardown();
    const generation = ++this.generation;
    if (globalThis.navigator?.onLine === false) {
      // Nothing to try while the browser says it has no network: `online` calls us back.
      this.setState("offline");
      return;
    }
    this.setState("connecting");
    if (this.tokenSource) {
      let token;
      try {
        token = await within(Promise.resolve(this.tokenSource()), REQUEST_TIMEOUT_MS, "the token");
      } catch {
        if (generation === this.generation) this.scheduleReconnect();
        return;
      }
      if (generation !== this.generation) return;
      this.token = token;
    }
    if (this.transport === "ws") this.connectWs(generation);
    else this.connectSse(generation);
  }

  /** `${base}/v1${path}` as an absolute URL, with `?access_token=` for streams if asked. */
  url(path, { stream = false, scheme = null } = {}) {
    const url = new URL(`${this.base}/v1${path}`, globalThis.location?.href);
    if (scheme) url.protocol = url.protocol === "https:" ? `${scheme}s:` : `${scheme}:`;
    if (stream && this.token) url.searchParams.set("access_token", this.token);
    return url;
  }

  /** fetch() with the connection's credentials (the token, else same-origin cookies) and a timeout. */
  fetch(url, init = {}) {
    const headers = { ...init.headers };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    return fetch(url, {
      credentials: "same-origin",
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      ...init,
      headers,
    });
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
    this.generation += 1; // a connect() still waiting for its token is abandoned
    this.setState("offline");
    const ceiling = Math.min(30_000, 500 * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 16);
    this.timer = setTimeout(() => this.connect(), Math.random() * ceiling);
  }

  reconnectNow() {
    if (this.state === "stopped") return;
    clearTimeout(this.timer);
    this.connect();
  }

  /** A connection failed before it said hello: logged out, refused, a stale cursor, or the server down? */
  async diagnose(generation) {
    let status = 0;
    try {
      status = (await this.fetch(this.url("/unread"))).status;
    } catch {
      status = 0; // network down, or no answer in time
    }
    if (generation !== this.generation || this.state === "stopped") return;
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
    if (status === 200 && this.transport === "ws" && !this.fixedTransport) {
      // HTTP answers but the WebSocket does not (a proxy without upgrades): after a second
      // refusal in a row, use SSE for the rest of this client's life.
      this.wsRefusals += 1;
      if (this.wsRefusals >= WS_REFUSALS_BEFORE_SSE) {
        this.transport = "sse";
        this.attempt = 0;
        this.connect();
        return;
      }
    }
    if (status === 200 && this.transport === "sse" && this.cursor && (await this.cursorRefused())) {
      if (generation !== this.generation || this.state === "stopped") return;
      // A cursor of another database (the server's data was replaced): start over.
      this.cursor = null;
      this.connect();
      return;
    }
    this.scheduleReconnect();
  }

  /** Whether the server refuses our cursor (400): the event stream would refuse it forever. */
  async cursorRefused() {
    const url = this.url("/sync");
    url.searchParams.set("cursor", this.cursor);
    url.searchParams.set("limit", "1");
    try {
      return (await this.fetch(url)).status === 400;
    } catch {
      return false;
    }
  }

  // ---- WebSocket ----------------------------------------------------------------------

  connectWs(generation) {
    let ws;
    try {
      // `WebSocket` missing, or a constructor that throws (a blocked port, a policy):
      // not an outage, and no refusal to diagnose. Straight to SSE, unless the app
      // asked for WebSockets only (then it is retried like one that failed).
      ws = new WebSocket(this.url("/ws", { stream: true, scheme: "ws" }));
    } catch {
      if (this.fixedTransport) {
        this.scheduleReconnect();
      } else {
        this.transport = "sse";
        this.connectSse(generation);
      }
      return;
    }
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
        this.wsRefusals = 0;
        this.startPinger(frame.heartbeat_s); // also guards the sync below
        buffered = [];
        try {
          await this.resumeWs(frame.cursor);
        } catch {
          if (this.ws === ws) this.scheduleReconnect();
          return;
        }
        if (this.ws !== ws) return;
        const later = buffered;
        buffered = null;
        for (const event of later) this.deliver(event);
        this.attempt = 0;
        this.authRetried = false;
        this.setState("online");
        this.pump();
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
        this.diagnose(generation);
      } else {
        this.scheduleReconnect();
      }
    };
  }

  /** Fills the gap since this client's cursor with `sync` pages, up to `helloCursor`. */
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
    clearInterval(this.pinger);
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

  connectSse(generation) {
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
      this.pump();
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
      // EventSource would retry by itself, at a fixed interval (every page at once after a
      // server restart). Instead it is closed, and we reconnect with the backoff and jitter
      // of the WebSocket; the new stream starts after `cursor` (what Last-Event-ID would
      // have said: the last durable event the page was given), so nothing is lost or
      // repeated.
      this.teardown();
      if (!hello) this.diagnose(generation);
      else this.scheduleReconnect();
    };
  }

  async httpRequest(op, params) {
    const [method, path, query, body] = route(op, params);
    const url = this.url(path);
    for (const [k, v] of Object.entries(query || {})) if (v != null) url.searchParams.set(k, String(v));
    const token = this.token;
    let response;
    try {
      response = await this.fetch(url, {
        method,
        headers: body ? { "Content-Type": "application/json" } : {},
        body: body ? JSON.stringify(body) : undefined,
      });
    } catch {
      throw new ChatError("unavailable", "network error or timeout");
    }
    const answer = await response.json().catch(() => null);
    if (!response.ok) {
      if (response.status === 401) {
        if (this.tokenSource) {
          // The token expired under us: reconnecting asks for a fresh one (and gives up
          // with `unauthorized` if that is refused too); sends wait and go again.
          if (token === this.token) this.reconnectNow();
          throw new ChatError("unavailable", "the token was refused");
        }
        this.stop();
        this.emit("unauthorized", {});
      }
      // A proxy's 502/503/504 has no error object: the server may not have seen it.
      const code = answer?.error?.code ?? (response.status >= 500 ? "unavailable" : "internal");
      throw new ChatError(code, answer?.error?.message ?? response.statusText);
    }
    return answer ?? {};
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
        // Given to the page from a send's answer: not again, but the stream has moved past it.
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
    const run = this.transport === "ws" ? this.wsRequest(op, params) : this.httpRequest(op, params);
    return within(run, REQUEST_TIMEOUT_MS, op);
  }

  // Sends go one at a time, in the order written, each until the server answers: the
  // same client_msg_id every time, so a send whose answer was lost is stored once.

  /** Queues a send: resolves with its `data` once the server has it. */
  sendWithRetry(params) {
    const withId = { client_msg_id: newClientMsgId(), ...params };
    return new Promise((resolve, reject) => {
      this.pendingSends.set(withId.client_msg_id, { params: withId, resolve, reject });
      this.pendingChanged();
      this.pump();
    });
  }

  /** Sends the oldest unsent message, if connected and none is in flight. */
  pump() {
    if (this.sending || this.state !== "online") return;
    const [key, pending] = this.pendingSends.entries().next().value ?? [];
    if (!pending) return;
    this.sending = key;
    this.request("send", pending.params).then((data) => {
      this.sending = null;
      this.pendingSends.delete(key);
      // A new message whose answer came before its event: the page learns of it now (a
      // restored send has nobody awaiting it, and the event, when it comes, is dropped as
      // seen). Before `pending`, so the "sending…" a page draws is replaced, not just
      // removed. A repeat (`created: false`) was stored by an earlier attempt, whose event
      // this page either had before its cursor or will have in its stream.
      if (data.created && data.message) {
        this.deliver({ event: "message.created", data: { message: data.message } });
      }
      this.pendingChanged();
      pending.resolve(data);
      this.pump();
    }, (error) => {
      this.sending = null;
      if (!this.pendingSends.has(key)) return; // stopped meanwhile
      if (RETRYABLE.has(error.code)) {
        // Maybe stored, maybe not: the same id again tells. While connected that is a
        // second later; else after the reconnect.
        clearTimeout(this.retryTimer);
        this.retryTimer = setTimeout(() => this.pump(), 1000);
        return;
      }
      this.pendingSends.delete(key);
      this.pendingChanged();
      pending.reject(error);
      this.pump();
    });
  }

  pendingChanged() {
    const params = [...this.pendingSends.values()].map((p) => p.params);
    try {
      if (params.length) this.storage?.setItem(this.pendingKey, JSON.stringify(params));
      else this.storage?.removeItem(this.pendingKey);
    } catch { /* storage full or denied: they stay in memory */ }
    this.emit("pending", { sends: params });
  }

  /** Takes up the sends previous pages (or tabs) of this user left unacknowledged. */
  restorePending() {
    const storage = this.storage;
    if (!storage || typeof storage.key !== "function") return;
    const keys = [];
    for (let i = 0; i < storage.length; i += 1) {
      const key = storage.key(i);
      if (key?.startsWith(this.pendingPrefix)) keys.push(key);
    }
    for (const key of keys) {
      let stored = [];
      try {
        stored = JSON.parse(storage.getItem(key) ?? "[]");
      } catch { /* unreadable: nothing to restore */ }
      for (const params of Array.isArray(stored) ? stored : []) {
        if (!params?.client_msg_id || this.pendingSends.has(params.client_msg_id)) continue;
        // Nobody awaits these: the page sees them as `message.created` (from the event or
        // from the answer, whichever comes first).
        this.pendingSends.set(params.client_msg_id, { params, resolve: () => {}, reject: () => {} });
      }
      storage.removeItem(key);
    }
    if (this.pendingSends.size) this.pendingChanged();
  }

  /** Sends not yet acknowledged, in order, for the page to show as pending. */
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
  block(userId) { return this.request("block", { user_id: userId }); }
  unblock(userId) { return this.request("unblock", { user_id: userId }); }
  /** `options`: limit, after. */
  blocks(options = {}) { return this.request("blocks", options); }
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
    case "block": return ["PUT", `/blocks/${enc(p.user_id)}`];
    case "unblock": return ["DELETE", `/blocks/${enc(p.user_id)}`];
    case "blocks": return ["GET", "/blocks", { limit: p.limit, after: p.after }];
    case "sync": return ["GET", "/sync", { cursor: p.cursor, limit: p.limit }];
    case "ping": return ["GET", "/unread"];
    default: throw new ChatError("bad_request", `unknown op ${op}`);
  }
}
