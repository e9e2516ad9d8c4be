// The reference client (static/chat-client.js) against the standalone server, as a team
// without a Rust backend uses it: the page on one origin, `messaging-ws-server` on another
// (allowed by --cors-origin), JWTs from `messaging-ws-server token`. One browser talks
// WebSocket, the other REST + server-sent events, and the server is killed under them.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import path from "node:path";
import { after, before, describe, it } from "node:test";

import { ServerProcess, eventually, interceptWebSocket, launchBrowser, openBrowser, repo } from "./harness.mjs";

const STEP = { timeout: 120_000 };
// How long a client may take to come back: its backoff grows to 30 s (with jitter).
const RECONNECT_MS = 45_000;
const serverBin = process.env.MESSAGING_SERVER_BIN ?? path.join(repo, "target", "debug", "messaging-ws-server");
const CLIENT_JS = readFileSync(path.join(repo, "examples", "marketplace", "static", "chat-client.js"));
const PAGE = `<!doctype html><meta charset="utf-8"><title>client</title>
<script type="module">
  import { ChatClient } from "/chat-client.js";
  window.ChatClient = ChatClient;
  window.ready = true;
</script>`;

/** The page's origin: a plain static server (the app's own web server, in real life). */
function servePage() {
  const server = createServer((request, response) => {
    if (request.url === "/chat-client.js") {
      response.writeHead(200, { "Content-Type": "text/javascript" }).end(CLIENT_JS);
    } else if (request.url === "/") {
      response.writeHead(200, { "Content-Type": "text/html" }).end(PAGE);
    } else {
      response.writeHead(404).end();
    }
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

/** messaging-ws-server on a SQLite file of its own, allowing the page's origin. */
class ChatServer extends ServerProcess {
  constructor(origin) {
    super("standalone");
    this.database = path.join(this.dataDir, "chat.db");
    this.origin = origin;
  }

  start() {
    return this.launch(serverBin, ["--database-url", this.database, "--listen", this.address,
      "--cors-origin", this.origin, "--log-level", "info"], "stderr", /address=([\d.]+:\d+)/);
  }

  /** A token for `user`, minted by the binary with the server's own secret. */
  token(user) {
    return execFileSync(serverBin, ["token", "--database-url", this.database, "--user", user]).toString().trim();
  }
}

let page;
let chat;
let browser;
const alice = { id: randomUUID() };
const bob = { id: randomUUID() };

/**
 * A ChatClient in `person`'s page, on the standalone server, its token given by a function
 * (as an app refreshing tokens would); every event it emits is kept in `window.events`.
 */
async function connect(person, transport, { waitOnline = true } = {}) {
  await person.page.goto(`${page.url}/`);
  await person.page.waitForFunction(() => window.ready === true);
  await person.page.evaluate(({ base, id, token, transport }) => {
    window.events = [];
    window.token = token;
    const client = new window.ChatClient({ base, userId: id, token: async () => window.token, transport });
    for (const name of ["message.created", "receipt.read", "typing", "status", "unauthorized", "reset"]) {
      client.addEventListener(name, (e) => window.events.push({ name, detail: e.detail }));
    }
    window.client = client;
    client.start();
  }, { base: chat.url, id: person.id, token: person.token ??= chat.token(person.id), transport });
  if (waitOnline) await online(person);
}

const stateOf = (person) => person.page.evaluate(() => window.client.state);
const online = (person) => eventually("the client to be online", async () => (await stateOf(person)) === "online", RECONNECT_MS);
const storedCursor = (person) => person.page.evaluate((id) => localStorage.getItem(`chat.cursor.${id}`), person.id);

/** The bodies of the `message.created` events the page's client emitted, in order. */
const received = (person) => person.page.evaluate(() =>
  window.events.filter((e) => e.name === "message.created").map((e) => e.detail.message.body));

async function receivedOnce(person, body) {
  await eventually(`"${body}" received`, async () => (await received(person)).includes(body));
  await new Promise((resolve) => setTimeout(resolve, 200)); // a duplicate would come right after
  assert.equal((await received(person)).filter((b) => b === body).length, 1, `"${body}" received once`);
}

const send = (person, conversationId, body) =>
  person.page.evaluate(([id, text]) => window.client.send(id, text).then((data) => data.created), [conversationId, body]);

describe("the reference client on the standalone server, cross-origin with tokens", () => {
  let conversationId;

  before(async () => {
    page = await servePage();
    page.url = `http://127.0.0.1:${page.address().port}`;
    chat = await new ChatServer(page.url).start();
    browser = await launchBrowser();
    alice.browser = await openBrowser(browser);
    bob.browser = await openBrowser(browser);
    alice.page = alice.browser.page;
    bob.page = bob.browser.page;
  });

  after(async () => {
    await browser?.close();
    await chat?.kill();
    page?.close();
    for (const person of [alice, bob]) assert.deepEqual(person.browser?.errors ?? [], [], "uncaught errors in the page");
  });

  it("alice on a WebSocket and bob on REST + SSE exchange messages, receipts and typing", STEP, async () => {
    await connect(alice, "ws");
    await connect(bob, "sse");
    assert.equal(await alice.page.evaluate(() => window.client.transport), "ws");
    assert.equal(await bob.page.evaluate(() => window.client.transport), "sse");

    conversationId = await alice.page.evaluate((peer) => window.client.open(peer).then((d) => d.conversation.id), bob.id);
    assert.equal(await send(alice, conversationId, "hi bob"), true);
    await receivedOnce(bob, "hi bob");
    assert.equal(await send(bob, conversationId, "hi alice, from plain HTTP"), true);
    await receivedOnce(alice, "hi alice, from plain HTTP");

    await bob.page.evaluate((id) => window.client.read(id, 2), conversationId);
    await eventually("alice to see bob's receipt", () => alice.page.evaluate((me) =>
      window.events.some((e) => e.name === "receipt.read" && e.detail.user_id !== me && e.detail.read_seq === 2), alice.id));
    await alice.page.evaluate((id) => window.client.typing(id, "started"), conversationId);
    await eventually("bob to see alice typing over SSE", () => bob.page.evaluate(() =>
      window.events.some((e) => e.name === "typing" && e.detail.state === "started")));
  });

  it("both recover when the server is killed: sends made meanwhile arrive once", STEP, async () => {
    const streams = await bob.page.evaluate(() => window.__eventSources.length);
    await chat.kill();
    await eventually("alice to notice", async () => (await stateOf(alice)) !== "online");
    await eventually("bob to notice", async () => (await stateOf(bob)) !== "online");
    const bobCursor = await storedCursor(bob);
    // Sent while the server is down: each waits, and goes once the server is back.
    const fromAlice = send(alice, conversationId, "while you were away");
    const fromBob = send(bob, conversationId, "me too");
    await chat.start();
    await online(alice);
    await online(bob);
    assert.equal(await fromAlice, true);
    assert.equal(await fromBob, true);
    await receivedOnce(bob, "while you were away");
    await receivedOnce(alice, "me too");
    // Bob's stream came back as a new EventSource of the client's (its backoff, with
    // jitter), not by EventSource's own fixed retry; resumed after the last event he had.
    const urls = await bob.page.evaluate(() => window.__eventSources);
    assert.ok(urls.length > streams, "the client opened a new event stream");
    assert.equal(new URL(urls.at(-1)).searchParams.get("cursor"), bobCursor, "the new stream resumes from bob's cursor");
    const history = await alice.page.evaluate((id) => window.client.history(id).then((d) => d.messages.map((m) => m.body)), conversationId);
    assert.deepEqual(history.toSorted(), ["hi alice, from plain HTTP", "hi bob", "me too", "while you were away"].toSorted());
  });

  it("a reload resumes from the stored cursor: what came meanwhile, once", STEP, async () => {
    // Bob's own send is the last event he saw: its echo, whether it comes before the send's
    // reply or after it (then dropped as a duplicate), must move his stored cursor.
    const before = await storedCursor(bob);
    await send(bob, conversationId, "back online");
    await receivedOnce(alice, "back online");
    await eventually("bob's cursor to move past his own message", async () => (await storedCursor(bob)) !== before);
    await bob.page.evaluate(() => window.client.stop());
    await send(alice, conversationId, "did you get this?");
    await connect(bob, "ws"); // the same localStorage: resumes after "back online"
    const { start, syncs } = await bob.page.evaluate(() => ({ start: window.__startCursor, syncs: window.__syncs }));
    assert.equal(syncs[0], start, "the first sync starts from the stored cursor");
    await receivedOnce(bob, "did you get this?");
    const bodies = await received(bob);
    assert.deepEqual(bodies, ["did you get this?"], "only what came after the stored cursor");
  });

  it("a send whose reply is lost is sent again after the reconnect, and stored once", STEP, async () => {
    const dave = await openBrowser(browser);
    dave.id = randomUUID();
    // Between dave's page and the server: everything passes, except that the first reply
    // to a `send` is swallowed and the connection cut, as a network drop would.
    let dropped = false;
    await interceptWebSocket(dave.context, /\/v1\/ws/, (frame, _message, link) => {
      if (dropped || frame.type !== "reply" || !link.sends.has(frame.id)) return false;
      dropped = true;
      link.page.close({ code: 1001, reason: "the network dropped" });
      return true;
    });
    await connect(dave, "ws");
    const created = await dave.page.evaluate(async (peer) => {
      const { conversation } = await window.client.open(peer);
      const { created } = await window.client.send(conversation.id, "did this arrive?");
      return created;
    }, alice.id);
    assert.equal(dropped, true, "the first reply was dropped");
    assert.equal(created, false, "the resend was recognised as the same message");
    await receivedOnce(alice, "did this arrive?");
    const bodies = await dave.page.evaluate(async (peer) => {
      const { conversation } = await window.client.open(peer);
      return (await window.client.history(conversation.id)).messages.map((m) => m.body);
    }, alice.id);
    assert.deepEqual(bodies, ["did this arrive?"]);
    assert.deepEqual(dave.errors, []);
    await dave.context.close();
  });

  it("a message written while the server is down survives a reload of the page, and reaches it once", STEP, async () => {
    await chat.kill();
    await eventually("bob to notice", async () => (await stateOf(bob)) !== "online");
    await bob.page.evaluate((id) => { window.client.send(id, "written, then the page reloaded").catch(() => {}); }, conversationId);
    await eventually("the send kept in storage", () => bob.page.evaluate((id) =>
      Object.keys(localStorage).some((key) => key.startsWith(`chat.pending.${id}.`)), bob.id));
    // From here on, bob's `message.created` pushes come half a second late: the answer to
    // the new page's send comes before its event, and nobody awaits that send.
    const order = [];
    await interceptWebSocket(bob.browser.context, /\/v1\/ws/, (frame, message, link) => {
      if (frame.type === "event" && frame.event === "message.created") {
        setTimeout(() => {
          order.push("event");
          try { link.page.send(message); } catch { /* closed meanwhile */ }
        }, 500);
        return true;
      }
      if (frame.type === "reply" && link.sends.has(frame.id)) order.push("answer");
      return false;
    });
    await connect(bob, "ws", { waitOnline: false }); // a new page: the server is still down
    assert.equal(await bob.page.evaluate(() => window.client.unacknowledged.length), 1, "taken up by the new page");
    await chat.start();
    await online(bob);
    await online(alice);
    await receivedOnce(alice, "written, then the page reloaded");
    await eventually("bob's event to have come", async () => order.includes("event"));
    assert.deepEqual(order, ["answer", "event"], "the answer before the event");
    await receivedOnce(bob, "written, then the page reloaded"); // from the answer, not again from the event
    await eventually("nothing left unsent", () => bob.page.evaluate((id) =>
      window.client.unacknowledged.length === 0 && !Object.keys(localStorage).some((key) => key.startsWith(`chat.pending.${id}.`)), bob.id));
    const history = await alice.page.evaluate((id) => window.client.history(id).then((d) => d.messages.map((m) => m.body)), conversationId);
    assert.equal(history.filter((b) => b === "written, then the page reloaded").length, 1);
  });

  it("a browser whose WebSocket constructor throws falls back to REST + SSE at once", STEP, async () => {
    const erin = await openBrowser(browser);
    erin.id = randomUUID();
    // What a blocked port or a policy does: the constructor throws, nothing is connected.
    await erin.context.addInitScript(() => {
      window.WebSocket = class {
        constructor() { throw new DOMException("refused by policy", "SecurityError"); }
      };
    });
    await connect(erin, "auto");
    assert.equal(await erin.page.evaluate(() => window.client.transport), "sse");
    const id = await erin.page.evaluate((peer) => window.client.open(peer).then((d) => d.conversation.id), alice.id);
    assert.equal(await send(erin, id, "no WebSocket here"), true);
    await receivedOnce(alice, "no WebSocket here");
    await send(alice, id, "fine over SSE");
    await receivedOnce(erin, "fine over SSE");
    assert.deepEqual(erin.errors, []);
    await erin.context.close();
  });

  it("every message reached each page once", STEP, async () => {
    for (const person of [alice, bob]) {
      const ids = await person.page.evaluate(() =>
        window.events.filter((e) => e.name === "message.created").map((e) => e.detail.message.id));
      assert.equal(new Set(ids).size, ids.length, "a message.created twice");
    }
  });

  it("a refused token ends in `unauthorized` (after asking for a fresh one once)", STEP, async () => {
    const carol = await openBrowser(browser);
    carol.id = randomUUID();
    await carol.page.goto(`${page.url}/`);
    await carol.page.waitForFunction(() => window.ready === true);
    await carol.page.evaluate((base) => {
      window.asked = 0;
      window.events = [];
      const client = new window.ChatClient({ base, userId: "x", token: () => { window.asked += 1; return "not-a-token"; } });
      client.addEventListener("unauthorized", () => window.events.push("unauthorized"));
      window.client = client;
      client.start();
    }, chat.url);
    await eventually("unauthorized", () => carol.page.evaluate(() => window.events.includes("unauthorized")));
    assert.equal(await carol.page.evaluate(() => window.asked), 2);
    assert.equal(await carol.page.evaluate(() => window.client.state), "stopped");
    assert.deepEqual(carol.errors, []);
    await carol.context.close();
  });
});
