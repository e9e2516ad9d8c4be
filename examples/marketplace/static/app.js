// The marketplace's pages: listings, login, inbox and a conversation, on chat-client.js.
import { ChatClient, newClientMsgId } from "/static/chat-client.js";

const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children.filter((c) => c != null));
  return node;
};
const price = (cents) => (cents / 100).toFixed(2);
const time = (ts) => new Date(ts).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: body ? { "Content-Type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw Object.assign(new Error(answer.error?.message || response.statusText), { status: response.status });
  return answer;
}

let me = null;
let chat = null;
const conversations = new Map(); // id → ConversationSummary
let current = null; // { id, messages: Map(seq → Message), oldest, hasMore }
let typingTimer = null;
let lastTypingSent = 0;

// ---- login ------------------------------------------------------------------------

async function boot() {
  try {
    me = (await api("GET", "/me")).user;
  } catch {
    showLogin();
    return;
  }
  $("login").hidden = true;
  $("app").hidden = false;
  $("logout").hidden = false;
  $("whoami").textContent = me.name;
  chat = new ChatClient({ userId: me.id, base: "/chat" });
  wire(chat);
  chat.start();
  loadListings();
  loadInbox();
}

function showLogin() {
  $("app").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("login-name").focus();
}

$("login").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    await api("POST", "/login", { name: $("login-name").value });
    boot();
  } catch (error) {
    $("login-error").textContent = error.message;
  }
});

$("logout").addEventListener("click", async () => {
  await api("POST", "/logout").catch(() => {});
  chat?.stop();
  location.reload();
});

// ---- listings -----------------------------------------------------------------------

async function loadListings() {
  const { listings } = await api("GET", "/listings");
  $("listings").replaceChildren(...listings.map(listingItem));
}

function listingItem(listing) {
  const item = el("li", { className: "listing" },
    el("strong", { className: listing.status === "sold" ? "sold" : "" }, listing.title),
    ` · ${price(listing.price_cents)} · ${listing.seller_name}`,
    listing.status === "sold" ? " (sold)" : null);
  if (listing.status !== "open") return item;
  if (listing.seller_id === me.id) {
    item.append(" ", el("button", { textContent: "Mark sold", onclick: async () => {
      await api("POST", `/listings/${listing.id}/sold`);
      loadListings();
    } }));
    return item;
  }
  const form = el("form", { className: "row", hidden: true });
  const id = `contact-${listing.id}`;
  const text = el("input", { id, type: "text", required: true, value: "Is it still available?" });
  form.append(el("label", { htmlFor: id, className: "visually-hidden", textContent: "Message to the seller" }),
    text, el("button", { type: "submit", className: "primary", textContent: "Send" }));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const contacted = await api("POST", `/listings/${listing.id}/contact`,
        { message: text.value, client_msg_id: newClientMsgId() });
      form.hidden = true;
      await loadInbox();
      openConversation(contacted.conversation.id);
    } catch (error) {
      $("pane-error").textContent = error.message;
    }
  });
  item.append(" ", el("button", { textContent: "Contact seller", onclick: () => {
    form.hidden = !form.hidden;
    if (!form.hidden) text.focus();
  } }), form);
  return item;
}

$("new-listing").addEventListener("submit", async (e) => {
  e.preventDefault();
  const cents = Math.round(Number($("listing-price").value) * 100);
  await api("POST", "/listings", { title: $("listing-title").value, price_cents: cents });
  e.target.reset();
  loadListings();
});

// ---- inbox --------------------------------------------------------------------------

async function loadInbox() {
  const { conversations: page } = await chat.conversations({ limit: 50 });
  conversations.clear();
  for (const c of page) conversations.set(c.id, c);
  renderInbox();
}

const peerOf = (c) => c.members.find((m) => m !== me.id);
const titleOf = (c) => c.metadata?.title ?? c.context ?? "Conversation";

function renderInbox() {
  const sorted = [...conversations.values()].sort((a, b) =>
    (b.last_message_at ?? b.created_at).localeCompare(a.last_message_at ?? a.created_at));
  $("inbox").replaceChildren(...sorted.map((c) => {
    const last = c.last_message;
    const preview = !last ? "" : last.deleted ? "(deleted)" : last.body || "(attachment)";
    const button = el("button", { onclick: () => openConversation(c.id) },
      el("strong", {}, titleOf(c)),
      c.unread_count > 0 ? el("span", { className: "badge", textContent: c.unread_count, ariaLabel: `${c.unread_count} unread` }) : el("span"),
      el("span", { className: "last", textContent: preview }));
    return el("li", { className: "inbox-item", ariaCurrent: String(current?.id === c.id) }, button);
  }));
  const total = sorted.reduce((n, c) => n + (c.unread_count || 0), 0);
  $("unread-total").hidden = total === 0;
  $("unread-total").textContent = total;
}

async function refreshSummary(id) {
  try {
    const { conversation } = await chat.conversation(id);
    conversations.set(id, conversation);
    renderInbox();
    if (current?.id === id) renderTicks();
  } catch { /* gone or not ours */ }
}

// ---- conversation -------------------------------------------------------------------

async function openConversation(id) {
  current = { id, messages: new Map(), hasMore: false };
  const c = conversations.get(id);
  $("pane-title").textContent = c ? titleOf(c) : "Conversation";
  $("messages").replaceChildren($("older"));
  $("composer").hidden = false;
  $("typing").textContent = "";
  renderInbox();
  const page = await chat.history(id, { limit: 30 });
  current.hasMore = page.has_more;
  for (const m of page.messages) current.messages.set(m.seq, m);
  renderMessages(true);
  markRead();
  const peer = c && peerOf(c);
  if (peer) {
    const { presence } = await chat.presence([peer]).catch(() => ({ presence: [] }));
    showPresence(presence[0]);
  }
  $("compose-text").focus();
}

let loadingOlder = false;
async function loadOlder() {
  if (loadingOlder || !current?.hasMore) return;
  loadingOlder = true;
  try {
    await loadOlderPage();
  } finally {
    loadingOlder = false;
  }
}

async function loadOlderPage() {
  const oldest = Math.min(...current.messages.keys());
  const box = $("messages");
  const before = box.scrollHeight;
  const page = await chat.history(current.id, { before_seq: oldest, limit: 30 });
  current.hasMore = page.has_more;
  for (const m of page.messages) current.messages.set(m.seq, m);
  renderMessages(false);
  box.scrollTop = box.scrollHeight - before; // keep the reader's place
}
$("older").addEventListener("click", loadOlder);
$("messages").addEventListener("scroll", (e) => {
  if (e.target.scrollTop === 0 && current?.hasMore) loadOlder();
});

function renderMessages(toBottom) {
  const box = $("messages");
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  $("older").hidden = !current.hasMore;
  const sorted = [...current.messages.values()].sort((a, b) => a.seq - b.seq);
  box.replaceChildren($("older"), ...sorted.map(messageNode), ...pendingNodes());
  if (toBottom || atBottom) box.scrollTop = box.scrollHeight;
}

function pendingNodes() {
  const sent = new Set([...current.messages.values()].map((m) => m.client_msg_id));
  return chat.unacknowledged
    .filter((p) => p.conversation_id === current.id && !sent.has(p.client_msg_id))
    .map((p) => el("div", { className: "msg own" }, p.body, el("div", { className: "meta", textContent: "sending…" })));
}

function tick(m) {
  const c = conversations.get(current.id);
  if (c && m.seq <= c.peer_read_seq) return el("span", { textContent: "✓✓", title: "Read", ariaLabel: "read" });
  return el("span", { textContent: "✓", title: "Sent", ariaLabel: "sent" });
}

function messageNode(m) {
  const own = m.sender_id === me.id;
  const classes = ["msg", own ? "own" : "", m.kind === "system" ? "system" : "", m.deleted ? "deleted" : ""];
  const node = el("div", { className: classes.join(" ") });
  node.dataset.seq = m.seq;
  if (m.deleted) {
    node.append("This message was deleted");
    return node;
  }
  node.append(el("div", { textContent: m.body }));
  for (const a of m.attachments) {
    const link = el("a", { href: a.url, target: "_blank", rel: "noopener noreferrer" });
    if (a.mime.startsWith("image/")) link.append(el("img", { src: a.url, alt: a.name || "image" }));
    else link.textContent = a.name || a.url;
    node.append(link);
  }
  if (m.kind === "system") return node;
  const reactions = el("div", { className: "reactions" });
  for (const r of m.reactions) {
    const mine = r.user_ids.includes(me.id);
    reactions.append(el("button", {
      textContent: `${r.emoji} ${r.user_ids.length}`, ariaPressed: String(mine),
      onclick: () => chat.react(m.id, r.emoji, mine ? "removed" : "added").then(upsert, showError),
    }));
  }
  const meta = el("div", { className: "meta" }, time(m.created_at), m.edited_at ? "(edited)" : null);
  if (!m.reactions.some((r) => r.emoji === "👍" && r.user_ids.includes(me.id))) {
    meta.append(el("button", { textContent: "👍", ariaLabel: "React with thumbs up",
      onclick: () => chat.react(m.id, "👍").then(upsert, showError) }));
  }
  if (own) {
    meta.append(el("span", { className: "tick" }, tick(m)),
      el("button", { textContent: "Edit", onclick: () => editMessage(m) }),
      el("button", { textContent: "Delete", onclick: () => confirm("Delete this message?") && chat.delete(m.id).then(upsert, showError) }));
  }
  node.append(reactions, meta);
  return node;
}

function editMessage(m) {
  const body = prompt("Edit your message", m.body);
  if (body != null && body.trim() && body !== m.body) chat.edit(m.id, body).then(upsert, showError);
}

function renderTicks() {
  if (current) renderMessages(false);
}

function upsert(data) {
  const m = data.message;
  if (current?.id === m.conversation_id) {
    current.messages.set(m.seq, m);
    renderMessages(false);
  }
}

function showError(error) {
  $("pane-error").textContent = error.message;
}

function markRead() {
  if (!current || document.hidden || current.messages.size === 0) return;
  const last = Math.max(...current.messages.keys());
  const c = conversations.get(current.id);
  if (c && c.read_seq >= last && c.unread_count === 0) return;
  chat.read(current.id, last).then(() => {
    if (c) Object.assign(c, { read_seq: last, unread_count: 0 });
    renderInbox();
  }, () => {});
}
document.addEventListener("visibilitychange", markRead);

function showPresence(p) {
  if (!p) return;
  $("peer-dot").hidden = false;
  $("peer-dot").classList.toggle("online", p.online);
  $("peer-state").textContent = p.online ? "online" : p.last_seen ? `last seen ${time(p.last_seen)}` : "offline";
}

// ---- composer -----------------------------------------------------------------------

$("compose-text").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    $("composer").requestSubmit();
  }
});

$("compose-text").addEventListener("input", () => {
  if (!current) return;
  const now = Date.now();
  if (now - lastTypingSent > 3000) {
    lastTypingSent = now;
    chat.typing(current.id, "started").catch(() => {});
  }
});

$("composer").addEventListener("submit", (e) => {
  e.preventDefault();
  const body = $("compose-text").value;
  if (!body.trim() || !current) return;
  $("compose-text").value = "";
  lastTypingSent = 0;
  const conversationId = current.id;
  chat.send(conversationId, body).then((data) => {
    upsert(data);
    refreshSummary(conversationId);
  }, showError);
  chat.typing(conversationId, "stopped").catch(() => {});
  renderMessages(true); // shows it as "sending…"
});

// ---- live events ----------------------------------------------------------------------

function wire(client) {
  client.addEventListener("status", ({ detail }) => {
    $("status").textContent = detail.state === "online" ? `● ${detail.transport}` : detail.state;
  });
  client.addEventListener("unauthorized", showLogin);
  client.addEventListener("reset", () => loadInbox().catch(() => {}));
  client.addEventListener("conversation.created", ({ detail }) => refreshSummary(detail.conversation.id));
  client.addEventListener("message.created", ({ detail: { message } }) => {
    upsert({ message });
    if (current?.id === message.conversation_id) markRead();
    refreshSummary(message.conversation_id);
    if (message.sender_id !== me.id && current?.id === message.conversation_id) $("typing").textContent = "";
  });
  for (const name of ["message.edited", "message.deleted", "reaction.added", "reaction.removed"]) {
    client.addEventListener(name, ({ detail }) => {
      upsert(detail);
      if (name === "message.deleted" || name === "message.edited") refreshSummary(detail.message.conversation_id);
    });
  }
  client.addEventListener("receipt.read", ({ detail }) => {
    const c = conversations.get(detail.conversation_id);
    if (!c) return;
    if (detail.user_id === me.id) Object.assign(c, { read_seq: detail.read_seq });
    else c.peer_read_seq = Math.max(c.peer_read_seq, detail.read_seq);
    refreshSummary(detail.conversation_id);
  });
  client.addEventListener("typing", ({ detail }) => {
    if (current?.id !== detail.conversation_id || detail.user_id === me.id) return;
    clearTimeout(typingTimer);
    if (detail.state === "started") {
      $("typing").textContent = "typing…";
      typingTimer = setTimeout(() => { $("typing").textContent = ""; }, detail.expires_in_ms);
    } else {
      $("typing").textContent = "";
    }
  });
  client.addEventListener("presence", ({ detail }) => {
    const c = current && conversations.get(current.id);
    if (c && peerOf(c) === detail.user_id) showPresence(detail);
  });
}

boot();
