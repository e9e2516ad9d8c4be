// What the browser tests stand on: the marketplace server as a real process (started,
// killed with SIGKILL, started again on the same port and data), headless Chromium driven
// by playwright-core, and a few waits that say what they waited for when they time out.
import { spawn } from "node:child_process";
import { createWriteStream, mkdirSync, rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
export const repo = path.resolve(here, "../../..");
/** Where screenshots, server logs and the server's data go (`target/browser-tests`). */
export const artifacts = process.env.BROWSER_ARTIFACTS ?? path.join(repo, "target", "browser-tests");
const serverBin = process.env.MARKETPLACE_BIN ?? path.join(repo, "target", "debug", "examples", "marketplace");
const chromiumBin = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium";

/** How long a wait lasts before the test fails (a loaded CI machine is slow). */
export const WAIT_MS = Number(process.env.BROWSER_WAIT_MS ?? 15_000);

/**
 * A server binary as a child process, one at a time, with its own data directory under
 * `artifacts` and its output in `<name>-server.log`: launched, SIGKILLed, launched again
 * (on the address it had, so open pages find it).
 */
export class ServerProcess {
  constructor(name) {
    this.dataDir = path.join(artifacts, `${name}-data`);
    rmSync(this.dataDir, { recursive: true, force: true });
    mkdirSync(this.dataDir, { recursive: true });
    this.log = createWriteStream(path.join(artifacts, `${name}-server.log`));
    this.address = "127.0.0.1:0";
    this.child = null;
  }

  get url() {
    return `http://${this.address}`;
  }

  /**
   * Starts `bin` with `args` and waits for the line of its `stream` ("stdout" or
   * "stderr") that `announce` matches, its first group being the address it listens on.
   */
  async launch(bin, args, stream, announce) {
    const child = spawn(bin, args, {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn" },
    });
    this.child = child;
    const quiet = stream === "stdout" ? child.stderr : child.stdout;
    quiet.pipe(this.log, { end: false });
    this.address = await new Promise((resolve, reject) => {
      let seen = "";
      const timer = setTimeout(() => reject(new Error(`${bin} did not announce its address`)), 30_000);
      child.on("error", reject);
      child.on("exit", (code) => reject(new Error(`${bin} exited (${code}) before listening`)));
      child[stream].on("data", (chunk) => {
        seen += chunk;
        this.log.write(chunk);
        const found = announce.exec(seen);
        if (found) {
          clearTimeout(timer);
          resolve(found[1]);
        }
      });
    });
    return this;
  }

  /** SIGKILL: no goodbye to any client, no flush beyond what the store made durable. */
  async kill() {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
    this.child = null;
  }
}

/** The marketplace example's server. */
export class Server extends ServerProcess {
  start() {
    return this.launch(serverBin, ["--data-dir", this.dataDir, "--addr", this.address], "stdout",
      /marketplace on http:\/\/([\d.]+:\d+)/);
  }
}

/** Headless Chromium as Debian ships it, with nothing that would reach outside loopback. */
export function launchBrowser() {
  return chromium.launch({
    executablePath: chromiumBin,
    headless: true,
    args: [
      "--no-sandbox", // CI runs as root
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/**
 * A browser context (its own cookies and localStorage: one person's browser) with one
 * page. Uncaught errors of the page's scripts are collected in `errors`. What the tests
 * check the chat client by, recorded in every page the context loads:
 *
 * - every `message.created` it emits, counted by message id in `window.__created` (this
 *   page load) and in `person.created` (every page load of the context: a reload resumes
 *   after the stored cursor, so a message reaches a person's pages once, not once each);
 * - `window.__startCursor`: the cursor stored when the page loaded (what a reload must
 *   resume from); `window.__syncs`: the cursor of each `sync` its WebSockets sent, and
 *   `window.__eventSources`: the URL of each event stream it opened (the cursor they
 *   resumed from). A context.routeWebSocket replaces the page's WebSocket: its frames are
 *   seen by the route, not here.
 */
export async function openBrowser(browser, { viewport = { width: 1280, height: 800 } } = {}) {
  const context = await browser.newContext({ viewport });
  const person = { context, page: null, errors: [], created: new Map() };
  await context.exposeBinding("__countCreated", (_source, id) => {
    person.created.set(id, (person.created.get(id) ?? 0) + 1);
  });
  await context.addInitScript(() => {
    window.__created = {};
    const dispatch = EventTarget.prototype.dispatchEvent;
    EventTarget.prototype.dispatchEvent = function (event) {
      if (event.type === "message.created" && event.detail?.message?.id) {
        const id = event.detail.message.id;
        window.__created[id] = (window.__created[id] ?? 0) + 1;
        window.__countCreated?.(id)?.catch?.(() => {}); // a page closing meanwhile
      }
      return dispatch.call(this, event);
    };
    window.__startCursor = null;
    try {
      const key = Object.keys(localStorage).find((k) => k.startsWith("chat.cursor."));
      if (key) window.__startCursor = localStorage.getItem(key);
    } catch { /* about:blank has no storage */ }
    window.__syncs = [];
    if (window.WebSocket) {
      const send = WebSocket.prototype.send;
      WebSocket.prototype.send = function (data) {
        try {
          const frame = JSON.parse(data);
          if (frame.op === "sync") window.__syncs.push(frame.cursor ?? null);
        } catch { /* not ours */ }
        return send.call(this, data);
      };
    }
    window.__eventSources = [];
    if (window.EventSource) {
      const Native = window.EventSource;
      window.EventSource = class extends Native {
        constructor(url, init) {
          super(url, init);
          window.__eventSources.push(String(url));
        }
      };
    }
  });
  person.page = await context.newPage();
  watch(person, person.page);
  return person;
}

/** Collects `page`'s uncaught errors into `person.errors`. */
export function watch(person, page) {
  page.on("pageerror", (error) => person.errors.push(error.message));
}

/**
 * Stands between `context`'s pages and the server's WebSocket at `url`, as a network
 * would: every frame passes, except those `fromServer(frame, message, link)` takes
 * (it returns true, and may send `message` on later or close `link.page`). `link.sends`
 * holds the ids of the page's `send` requests, to tell their replies apart.
 */
export async function interceptWebSocket(context, url, fromServer) {
  await context.routeWebSocket(url, (ws) => {
    const server = ws.connectToServer();
    const link = { page: ws, sends: new Set() };
    ws.onMessage((message) => {
      const frame = JSON.parse(message);
      if (frame.op === "send") link.sends.add(frame.id);
      server.send(message);
    });
    server.onMessage((message) => {
      if (!fromServer(JSON.parse(message), message, link)) ws.send(message);
    });
  });
}

/**
 * Waits until `check()` returns a truthy value (returned), or fails with `what` and the
 * last value seen. `check` may be async and may throw (treated as not yet).
 */
export async function eventually(what, check, timeout = WAIT_MS) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await check();
      if (last) return last;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${what} (last: ${format(last)})`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function format(value) {
  if (value instanceof Error) return value.message;
  try {
    return JSON.stringify(value);
  } catch {
    return String(value);
  }
}
