// The marketplace's page: log in, listings, the inbox and one conversation, all live
// through chat-client.js. Plain DOM, no framework: each part of the page has one render
// function, and a message's node is replaced alone when it changes (an edit being typed
// elsewhere in the list is never thrown away by a live event).
import { ChatClient, newClientMsgId } from "/static/chat-client.js";

const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children.filter((c) => c != null));
  return node;
};
const price = (cents) => (cents / 100).toFixed(2);
const time = (ts) => new Date(ts).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
const PAGE = 30; // messages per history page

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: body ? { "Content-Type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw Object.assign(new Error(answer.error?.message || response.statusText), { status: response.status });
  }
  return answer;
}

let me = null;
let chat = null;
const conversations = new Map(); // id → ConversationSummary
const names = new Map(); // user id → name
const blocked = new Set(); // the users I block
// The open conversation: its messages by seq, their nodes, whether older ones exist, the
// message being replied to, and the one being edited or confirmed for deletion.
let current = null;
let typingTimer = null;
let lastTypingSent = 0;

// ---- login --------------------------------------------------------------------------

async function boot() {
  try {
    me = (await api("GET", "/me")).user;
  } catch {
    showLogin();
    return;
  }
  names.set(me.id, me.name);
  chat?.stop();
  $("login").hidden = true;
  $("app").hidden = false;
  $("logout").hidden = false;
  $("whoami").textContent = me.name;
  chat = new ChatClient({ userId: me.id, base: "/chat" });
  wire(chat);
  chat.start();
  loadListings().catch(showError);
  loadInbox().catch(showError);
  loadBlocks().catch(showError);
}

/** Whom I block (a marketplace has few; one page of 100 is enough for a demo). */
async function loadBlocks() {
  const { user_ids: ids } = await chat.blocks({ limit: 100 });
  blocked.clear();
  for (const id of ids) blocked.add(id);
  renderBlock();
}

function renderBlock() {
  const c = current && conversations.get(current.id);
  const peer = c && peerOf(c);
  $("block").hidden = !peer;
  if (!peer) return;
  const isBlocked = blocked.has(peer);
  $("block").textContent = isBlocked ? `Unblock ${nameOf(peer)}` : `Block ${nameOf(peer)}`;
  $("block").ariaPressed = String(isBlocked);
}

$("block").addEventListener("click", async () => {
  const c = current && conversations.get(current.id);
  const peer = c && peerOf(c);
  if (!peer) return;
  try {
    if (blocked.has(peer)) {
      await chat.unblock(peer);
      blocked.delete(peer);
    } else {
      await chat.block(peer);
      blocked.add(peer);
    }
    renderBlock();
  } catch (error) {
    showError(error);
  }
});

function showLogin() {
  chat?.stop();
  chat = null;
  closeConversation();
  conversations.clear();
  $("inbox").replaceChildren();
  $("app").hidden = true;
  $("logout").hidden = true;
  $("whoami").textContent = "";
  $("status").textContent = "";
  $("login").hidden = false;
  $("login-name").focus();
}

$("login").addEventListener("submit", async (e) => {
  e.preventDefault();
  const button = e.target.querySelector("button");
  if (button.disabled) return;
  button.disabled = true;
  try {
    await api("POST", "/login", { name: $("login-name").value });
    $("login-error").textContent = "";
    await boot();
  } catch (error) {
    $("login-error").textContent = error.message;
  } finally {
    button.disabled = false;
  }
});

$("logout").addEventListener("click", async () => {
  await api("POST", "/logout").catch(() => {});
  chat?.stop({ discardUnsent: true });
  location.reload();
});

// ---- names --------------------------------------------------------------------------

/** Looks up the names of `ids` not known yet (one request). */
async function learnNames(ids) {
  const unknown = [...new Set(ids)].filter((id) => !names.has(id));
  if (unknown.length === 0) return;
  const { users } = await api("GET", `/users?ids=${unknown.slice(0, 100).join(",")}`);
  for (const user of users) names.set(user.id, user.name);
}

const nameOf = (id) => names.get(id) ?? "someone";

// ---- listings -----------------------------------------------------------------------

async function loadListings() {
  const { listings } = await api("GET", "/listings");
  $("listings").replaceChildren(...listings.map(listingItem));
  $("no-listings").hidden = listings.length > 0;
}

function listingItem(listing) {
  const sold = listing.status === "sold";
  const item = el("li", { className: "listing" },
    el("strong", { className: sold ? "sold" : "" }, listing.title),
    el("span", { className: "muted" }, ` ${price(listing.price_cents)} · ${listing.seller_name}${sold ? " · sold" : ""}`));
  if (sold) return item;
  if (listing.seller_id === me.id) {
    item.append(" ", el("button", {
      // The visible words first (what speech input users say), then which listing.
      textContent: "Mark sold",
      ariaLabel: `Mark sold: ${listing.title}`,
      onclick: () => api("POST", `/listings/${listing.id}/sold`).then(loadListings, showError),
    }));
    return item;
  }
  const id = `contact-${listing.id}`;
  const text = el("input", { id, type: "text", required: true, value: "Is it still available?" });
  const form = el("form", { className: "row", hidden: true },
    el("label", { htmlFor: id, className: "visually-hidden", textContent: `Message to ${listing.seller_name}` }),
    text, el("button", { type: "submit", className: "primary", textContent: "Send" }));
  // One id per message written, kept until it is answered: a second click, or a retry
  // after an answer that never came, is the same message, stored once.
  let clientMsgId = newClientMsgId();
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const button = form.querySelector("button");
    if (button.disabled) return;
    button.disabled = true;
    try {
      const contacted = await api("POST", `/listings/${listing.id}/contact`,
        { message: text.value, client_msg_id: clientMsgId });
      clientMsgId = newClientMsgId();
      form.hidden = true;
      conversations.set(contacted.conversation.id, { ...contacted.conversation, unread_count: 0 });
      await openConversation(contacted.conversation.id);
      refreshSummary(contacted.conversation.id);
    } catch (error) {
      showError(error);
    } finally {
      button.disabled = false;
    }
  });
  item.append(" ", el("button", {
    textContent: "Contact seller",
    ariaLabel: `Contact seller: ${listing.title}`,
    ariaExpanded: "false",
    onclick: (e) => {
      form.hidden = !form.hidden;
      e.target.ariaExpanded = String(!form.hidden);
      if (!form.hidden) text.focus();
    },
  }), form);
  return item;
}

$("new-listing").addEventListener("submit", async (e) => {
  e.preventDefault();
  const cents = Math.round(Number($("listing-price").value) * 100);
  try {
    await api("POST", "/listings", { title: $("listing-title").value, price_cents: cents });
    e.target.reset();
    await loadListings();
  } catch (error) {
    showError(error);
  }
});

// ---- inbox --------------------------------------------------------------------------

async function loadInbox() {
  const { conversations: page } = await chat.conversations({ limit: 50 });
  await learnNames(page.flatMap((c) => c.members)).catch(() => {});
  conversations.clear();
  for (const c of page) conversations.set(c.id, c);
  renderInbox();
}

const peerOf = (c) => c.members.find((m) => m !== me.id);
const titleOf = (c) => c.metadata?.title ?? c.context ?? "Conversation";
const activity = (c) => c.last_message_at ?? c.created_at;

function preview(m) {
  if (!m) return "No messages yet";
  if (m.deleted) return "Message deleted";
  const text = m.body || (m.attachments.length ? "📎 Attachment" : "");
  if (m.kind === "system") return text;
  return m.sender_id === me.id ? `You: ${text}` : text;
}

function renderInbox() {
  // The list is drawn anew: a keyboard user's focus stays on the same conversation.
  const focused = document.activeElement?.closest?.("#inbox li")?.dataset.conversation;
  const sorted = [...conversations.values()].sort((a, b) => activity(b).localeCompare(activity(a)));
  $("inbox").replaceChildren(...sorted.map((c) => {
    const unread = c.unread_count > 0;
    const button = el("button", { onclick: () => openConversation(c.id) },
      el("span", { className: "title" }, el("strong", {}, titleOf(c)), el("span", { className: "muted" }, ` · ${nameOf(peerOf(c))}`)),
      unread ? el("span", {}, el("span", { className: "badge", textContent: c.unread_count, ariaHidden: "true" }),
        el("span", { className: "visually-hidden", textContent: `${c.unread_count} unread` })) : el("span"),
      el("span", { className: "last", textContent: preview(c.last_message) }));
    const item = el("li", { className: `inbox-item${unread ? " unread" : ""}` }, button);
    item.dataset.conversation = c.id;
    if (current?.id === c.id) button.ariaCurrent = "true";
    return item;
  }));
  if (focused) $("inbox").querySelector(`li[data-conversation="${focused}"] button`)?.focus();
  $("no-conversations").hidden = sorted.length > 0;
  const total = sorted.reduce((n, c) => n + (c.unread_count || 0), 0);
  $("unread-total").hidden = total === 0;
  $("unread-total").textContent = total;
  $("unread-total-text").textContent = total ? `, ${total} unread` : "";
}

/** Reloads one summary (unread count, last message, the peer's markers). */
async function refreshSummary(id) {
  try {
    const { conversation } = await chat.conversation(id);
    await learnNames(conversation.members).catch(() => {});
    conversations.set(id, conversation);
    renderInbox();
    if (current?.id === id) {
      renderTitle();
      updateTicks();
    }
  } catch { /* gone, or the connection dropped: the next event refreshes it */ }
}

// ---- the conversation ---------------------------------------------------------------

async function openConversation(id) {
  if (current?.id === id && current.loaded) {
    $("compose-text").focus();
    return;
  }
  current = { id, messages: new Map(), nodes: new Map(), hasMore: false, replyTo: null, editing: null, loaded: false };
  $("messages").replaceChildren($("older"), $("pending"));
  $("pending").replaceChildren();
  $("composer").hidden = false;
  $("typing").textContent = "";
  $("peer-dot").hidden = true;
  $("peer-state").textContent = "";
  setReply(null);
  renderTitle();
  renderInbox();
  $("compose-text").focus();
  try {
    const page = await chat.history(id, { limit: PAGE });
    if (current?.id !== id) return;
    current.loaded = true;
    current.hasMore = page.has_more;
    for (const m of page.messages) place(m);
    $("older").hidden = !current.hasMore;
    scrollToBottom();
    renderPending();
    markRead();
    const c = conversations.get(id);
    const peer = c && peerOf(c);
    if (peer) {
      const { presence } = await chat.presence([peer]);
      if (current?.id === id) showPresence(presence[0]);
    }
  } catch (error) {
    showError(error);
  }
}

/**
 * Fetches the open conversation's newest page again (after a `reset`: messages, edits
 * and deletions may have come as no event) and merges it in by seq: what is shown stays
 * (older pages loaded, a live message that came meanwhile, an edit being typed), what
 * changed is redrawn, what was missed is added. When more was missed than the page holds,
 * the pane is drawn again from that page.
 */
async function reloadConversation() {
  const id = current?.loaded ? current.id : null;
  if (!id) return; // not open, or its first page is still coming (and will be current)
  try {
    const page = await chat.history(id, { limit: PAGE });
    if (current?.id !== id) return;
    const stick = atBottom();
    const newestShown = Math.max(0, ...current.messages.keys());
    const oldestFetched = Math.min(...page.messages.map((m) => m.seq));
    if (oldestFetched > newestShown + 1) {
      // More came while away than one page holds: merged, the pane would have a hole that
      // "Load older" (which pages down from the oldest shown) never fills. Start over
      // from this page, as opening the conversation does.
      current.messages.clear();
      current.nodes.clear();
      $("messages").replaceChildren($("older"), $("pending"));
      current.hasMore = page.has_more;
    } else if (Math.min(...current.messages.keys()) >= oldestFetched) {
      // Older pages loaded before keep their "Load older" state; else this page's says.
      current.hasMore = page.has_more;
    }
    for (const m of page.messages) place(m);
    $("older").hidden = !current.hasMore;
    renderPending();
    if (stick) scrollToBottom();
    markRead();
  } catch (error) {
    showError(error);
  }
}

/** Empties the pane (a logout: the next person must not see it). */
function closeConversation() {
  current = null;
  $("messages").replaceChildren($("older"), $("pending"));
  $("pending").replaceChildren();
  $("older").hidden = true;
  $("composer").hidden = true;
  $("typing").textContent = "";
  $("peer-dot").hidden = true;
  $("peer-state").textContent = "";
  $("pane-title").textContent = "Select a conversation";
  $("block").hidden = true;
  setReply(null);
}

function renderTitle() {
  const c = current && conversations.get(current.id);
  $("pane-title").textContent = c ? `${titleOf(c)} · ${nameOf(peerOf(c))}` : "Conversation";
  renderBlock();
}

let loadingOlder = false;
async function loadOlder() {
  if (loadingOlder || !current?.hasMore) return;
  loadingOlder = true;
  const id = current.id;
  try {
    const box = $("messages");
    const fromBottom = box.scrollHeight - box.scrollTop;
    const oldest = Math.min(...current.messages.keys());
    const page = await chat.history(id, { before_seq: oldest, limit: PAGE });
    if (current?.id !== id) return;
    current.hasMore = page.has_more;
    for (const m of page.messages) place(m);
    $("older").hidden = !current.hasMore;
    box.scrollTop = box.scrollHeight - fromBottom; // the reader keeps their place
  } catch (error) {
    showError(error);
  } finally {
    loadingOlder = false;
  }
}
$("older").addEventListener("click", loadOlder);
$("messages").addEventListener("scroll", (e) => {
  if (e.target.scrollTop === 0 && current?.hasMore) loadOlder();
});

const atBottom = () => {
  const box = $("messages");
  return box.scrollHeight - box.scrollTop - box.clientHeight < 40;
};
const scrollToBottom = () => { $("messages").scrollTop = $("messages").scrollHeight; };

/** Shows `m` (new or changed) in the open conversation, in seq order. */
function place(m) {
  current.messages.set(m.seq, m);
  // A message being edited keeps its form; the change shows when the form closes.
  if (current.editing?.seq !== m.seq) render(m);
  // Replies quote it: they show its new text (or that it is gone).
  for (const reply of current.messages.values()) {
    if (reply.reply_to_seq === m.seq && current.nodes.has(reply.seq) && current.editing?.seq !== reply.seq) render(reply);
  }
}

/** Draws `m`'s node anew (its form, while it is being edited). */
function render(m) {
  const node = messageNode(m);
  const old = current.nodes.get(m.seq);
  current.nodes.set(m.seq, node);
  if (old) {
    // A keyboard user on one of its buttons stays there (or on the message). Found by
    // what it does: its name changes with the message's text or the reaction's count.
    const which = (b) => b.dataset.action ?? b.ariaLabel ?? b.textContent;
    const focused = old.contains(document.activeElement) ? document.activeElement : null;
    const key = focused && which(focused);
    old.replaceWith(node);
    if (focused) {
      const same = [...node.querySelectorAll("button")].find((b) => which(b) === key);
      (same ?? node).focus();
    }
    return;
  }
  const after = [...current.nodes.keys()].filter((seq) => seq > m.seq).sort((a, b) => a - b)[0];
  $("messages").insertBefore(node, after != null ? current.nodes.get(after) : $("pending"));
}

function upsert(m) {
  if (current?.id !== m.conversation_id) return;
  const stick = atBottom();
  place(m);
  renderPending();
  if (stick) scrollToBottom();
}

/** Sends not yet acknowledged (offline, or waiting for the server), shown as "sending…". */
function renderPending() {
  if (!current) return;
  const stored = new Set([...current.messages.values()].map((m) => m.client_msg_id));
  $("pending").replaceChildren(...chat.unacknowledged
    .filter((p) => p.conversation_id === current.id && !stored.has(p.client_msg_id))
    .map((p) => el("div", { className: "msg own pending" },
      el("div", { className: "body", textContent: p.body }),
      el("div", { className: "meta", textContent: "sending…" }))));
}

/** A message in a few words, for the names of its buttons: "Edit: See you at the…". */
function gist(m) {
  const text = (m.body || m.attachments[0]?.name || "an attachment").trim().split(/\s+/);
  const words = text.slice(0, 6).join(" ");
  const chars = [...words]; // whole characters: an emoji is not cut in two
  return chars.length > 40 ? `${chars.slice(0, 40).join("")}…` : text.length > 6 ? `${words}…` : words;
}

/**
 * One of a message's buttons. Its name starts with its visible text (what a speech input
 * user says) and says which message (a screen reader's list of buttons is not twenty
 * "Edit"s); `action` is what it does, for focus to follow it when the message is redrawn.
 */
function messageButton(action, props) {
  const button = el("button", props);
  button.dataset.action = action;
  return button;
}

function tickOf(m) {
  const c = conversations.get(m.conversation_id);
  return c && m.seq <= c.peer_read_seq
    ? { textContent: "✓✓", title: "Read", ariaLabel: "read" }
    : { textContent: "✓", title: "Sent", ariaLabel: "sent" };
}

function updateTicks() {
  if (!current) return;
  for (const [seq, node] of current.nodes) {
    const tick = node.querySelector(".tick");
    if (tick) Object.assign(tick, tickOf(current.messages.get(seq)));
  }
}

function messageNode(m) {
  const own = m.sender_id === me.id;
  const system = m.kind === "system";
  const node = el("div", { className: ["msg", own && "own", system && "system", m.deleted && "deleted"].filter(Boolean).join(" "), tabIndex: -1 });
  node.dataset.seq = m.seq;
  if (m.deleted) {
    node.append(el("div", { className: "body", textContent: "This message was deleted" }));
    return node;
  }
  if (m.reply_to_seq) {
    const quoted = current.messages.get(m.reply_to_seq);
    const text = !quoted ? `a message (#${m.reply_to_seq})` : quoted.deleted ? "a deleted message" : quoted.body || "an attachment";
    node.append(el("div", { className: "quote", textContent: `↪ ${text}` }));
  }
  if (current.editing?.seq === m.seq) {
    node.append(current.editing.mode === "edit" ? editForm(m) : deleteConfirm(m));
    return node;
  }
  if (m.body) node.append(el("div", { className: "body", textContent: m.body }));
  for (const a of m.attachments) {
    const link = el("a", { href: a.url, target: "_blank", rel: "noopener noreferrer", className: "attachment", referrerPolicy: "no-referrer" });
    // No referrer: the image host learns nothing of the conversation's page.
    if (a.mime.startsWith("image/")) link.append(el("img", { src: a.url, alt: a.name || "image", loading: "lazy", referrerPolicy: "no-referrer" }));
    else link.textContent = `📎 ${a.name || a.url}`;
    node.append(link);
  }
  if (system) return node;
  const reactions = el("div", { className: "reactions" });
  for (const r of m.reactions) {
    const mine = r.user_ids.includes(me.id);
    const shown = `${r.emoji} ${r.user_ids.length}`;
    reactions.append(messageButton(`reaction ${r.emoji}`, {
      textContent: shown,
      ariaPressed: String(mine),
      ariaLabel: `${shown}, from ${r.user_ids.map(nameOf).join(", ")}, ${mine ? "remove yours" : "add yours"}`,
      onclick: () => chat.react(m.id, r.emoji, mine ? "removed" : "added").then(({ message }) => upsert(message), showError),
    }));
  }
  // The tick is a picture of a state: role img, for its label to be read.
  const meta = el("div", { className: "meta" }, el("time", { dateTime: m.created_at, textContent: time(m.created_at) }),
    m.edited_at ? el("span", { textContent: "(edited)" }) : null,
    own ? el("span", { className: "tick", role: "img", ...tickOf(m) }) : null);
  // The actions show on hover or keyboard focus (always on touch screens).
  const actions = el("span", { className: "actions" });
  const about = gist(m);
  if (!m.reactions.some((r) => r.emoji === "👍" && r.user_ids.includes(me.id))) {
    actions.append(messageButton("react", { textContent: "👍", ariaLabel: `React with thumbs up: ${about}`,
      onclick: () => chat.react(m.id, "👍").then(({ message }) => upsert(message), showError) }));
  }
  actions.append(messageButton("reply", { textContent: "Reply", ariaLabel: `Reply: ${about}`, onclick: () => setReply(m) }));
  if (own) {
    actions.append(messageButton("edit", { textContent: "Edit", ariaLabel: `Edit: ${about}`, onclick: () => startEditing(m, "edit") }),
      messageButton("delete", { textContent: "Delete", ariaLabel: `Delete: ${about}`, onclick: () => startEditing(m, "delete") }));
  }
  meta.append(actions);
  node.append(reactions, meta);
  return node;
}

// Edit and delete happen in place: a form instead of the message, focus inside it, Escape
// or Cancel puts the message back.
function startEditing(m, mode) {
  const previous = current.editing;
  current.editing = { seq: m.seq, mode };
  if (previous) render(current.messages.get(previous.seq));
  render(m);
  current.nodes.get(m.seq).querySelector("textarea, button")?.focus();
}

function stopEditing() {
  const editing = current?.editing;
  if (!editing) return;
  current.editing = null;
  render(current.messages.get(editing.seq));
  current.nodes.get(editing.seq)?.querySelector("button")?.focus();
}

function editForm(m) {
  const id = `edit-${m.seq}`;
  const text = el("textarea", { id, value: m.body, rows: 2 });
  const form = el("form", { className: "inline" },
    el("label", { htmlFor: id, className: "visually-hidden", textContent: "Edit message" }), text,
    el("div", { className: "row" },
      el("button", { type: "submit", className: "primary", textContent: "Save" }),
      el("button", { type: "button", textContent: "Cancel", onclick: stopEditing })));
  text.addEventListener("keydown", (e) => {
    if (e.key === "Escape") stopEditing();
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const body = text.value;
    if (!body.trim() || body === m.body) return stopEditing();
    chat.edit(m.id, body).then(({ message }) => {
      stopEditing();
      upsert(message);
    }, showError);
  });
  return form;
}

function deleteConfirm(m) {
  const box = el("div", { className: "inline", role: "group", ariaLabel: "Delete this message?" },
    el("div", { className: "body", textContent: m.body }),
    el("span", { textContent: "Delete this message? " }),
    el("button", { className: "danger", textContent: "Delete for everyone", onclick: () => chat.delete(m.id).then(({ message }) => {
      stopEditing();
      upsert(message);
    }, showError) }),
    el("button", { textContent: "Keep", onclick: stopEditing }));
  box.addEventListener("keydown", (e) => e.key === "Escape" && stopEditing());
  return box;
}

function showError(error) {
  $("pane-error").textContent = error?.message ?? String(error);
  clearTimeout(showError.timer);
  showError.timer = setTimeout(() => { $("pane-error").textContent = ""; }, 8000);
}

/** Reads up to the newest shown message when the page is visible and it is unread. */
function markRead() {
  if (!current || document.hidden || current.messages.size === 0) return;
  // Up to the last message shown with none missing before it: one's own message, shown
  // from the send's answer, can come before a peer's message still on its way, and that
  // one must not be marked read unseen.
  let last = Math.min(...current.messages.keys());
  while (current.messages.has(last + 1)) last += 1;
  const c = conversations.get(current.id);
  if (c && c.read_seq >= last && c.unread_count === 0) return;
  const id = current.id;
  chat.read(id, last).then(() => {
    const summary = conversations.get(id);
    if (summary) Object.assign(summary, { read_seq: Math.max(summary.read_seq, last), unread_count: 0 });
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

// ---- the composer ---------------------------------------------------------------------

function setReply(m) {
  if (current) current.replyTo = m;
  $("replying").hidden = !m;
  $("replying-text").textContent = m ? (m.body || "an attachment") : "";
  if (m) $("compose-text").focus();
}
$("cancel-reply").addEventListener("click", () => setReply(null));

$("compose-text").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    $("composer").requestSubmit();
  }
  if (e.key === "Escape") setReply(null);
});

$("compose-text").addEventListener("input", () => {
  if (!current) return;
  const now = Date.now();
  const stopped = $("compose-text").value === "";
  if (stopped) {
    lastTypingSent = 0;
    chat.typing(current.id, "stopped").catch(() => {});
  } else if (now - lastTypingSent > 3000) {
    lastTypingSent = now;
    chat.typing(current.id, "started").catch(() => {});
  }
});

/** An attachment from a pasted link: images by their extension, anything else a link. */
function attachmentOf(url) {
  const name = decodeURIComponent(new URL(url).pathname.split("/").pop() || "") || url;
  const ext = name.split(".").pop().toLowerCase();
  const images = { jpg: "image/jpeg", jpeg: "image/jpeg", png: "image/png", gif: "image/gif", webp: "image/webp" };
  return { url, name: utf8Prefix(name, 255), mime: images[ext] ?? "application/octet-stream" };
}

/** The longest prefix of `text`, in whole characters, of at most `bytes` UTF-8 bytes. */
function utf8Prefix(text, bytes) {
  const encoder = new TextEncoder();
  let out = "";
  for (const ch of text) {
    if (encoder.encode(out + ch).length > bytes) break;
    out += ch;
  }
  return out;
}

$("composer").addEventListener("submit", (e) => {
  e.preventDefault();
  if (!current) return;
  const body = $("compose-text").value;
  const link = $("compose-link").value.trim();
  if (!body.trim() && !link) return;
  const options = {};
  if (link) {
    try {
      options.attachments = [attachmentOf(link)];
    } catch {
      showError(new Error("the link is not a URL"));
      return;
    }
  }
  if (current.replyTo) options.reply_to_seq = current.replyTo.seq;
  $("compose-text").value = "";
  $("compose-link").value = "";
  $("attach").open = false;
  setReply(null);
  lastTypingSent = 0;
  const conversationId = current.id;
  chat.send(conversationId, body, options).then(({ message }) => {
    upsert(message);
    refreshSummary(conversationId);
  }, (error) => {
    // Refused for good (too long, blocked, …): the text comes back to be fixed or copied.
    showError(error);
    if (current?.id === conversationId && !$("compose-text").value) $("compose-text").value = body;
    renderPending();
  });
  chat.typing(conversationId, "stopped").catch(() => {});
  renderPending(); // "sending…" until the server has it
  scrollToBottom();
});

// ---- live events --------------------------------------------------------------------

function wire(client) {
  client.addEventListener("status", ({ detail }) => {
    const labels = { online: "online", connecting: "connecting…", offline: "offline, retrying…", stopped: "" };
    $("status").textContent = labels[detail.state] ?? detail.state;
    $("status").dataset.state = detail.state;
    $("status").dataset.transport = detail.transport;
    if (detail.state === "online" && current) renderPending();
  });
  client.addEventListener("unauthorized", showLogin);
  client.addEventListener("pending", () => renderPending());
  // No cursor to resume from: whatever happened meanwhile came as no event. The inbox and
  // the open conversation are fetched again.
  client.addEventListener("reset", () => {
    loadInbox().catch(() => {});
    reloadConversation();
  });
  client.addEventListener("conversation.created", ({ detail }) => refreshSummary(detail.conversation.id));
  client.addEventListener("conversation.updated", ({ detail }) => refreshSummary(detail.conversation.id));
  client.addEventListener("message.created", ({ detail: { message } }) => {
    upsert(message);
    if (current?.id === message.conversation_id) {
      markRead();
      if (message.sender_id !== me.id) {
        clearTimeout(typingTimer);
        $("typing").textContent = "";
      }
    }
    refreshSummary(message.conversation_id);
  });
  for (const name of ["message.edited", "message.deleted", "reaction.added", "reaction.removed"]) {
    client.addEventListener(name, ({ detail }) => {
      upsert(detail.message);
      if (name === "message.edited" || name === "message.deleted") refreshSummary(detail.message.conversation_id);
    });
  }
  client.addEventListener("receipt.read", ({ detail }) => {
    const c = conversations.get(detail.conversation_id);
    if (c && detail.user_id !== me.id) {
      c.peer_read_seq = Math.max(c.peer_read_seq, detail.read_seq);
      if (current?.id === c.id) updateTicks();
    }
    refreshSummary(detail.conversation_id);
  });
  client.addEventListener("typing", ({ detail }) => {
    if (current?.id !== detail.conversation_id || detail.user_id === me.id) return;
    clearTimeout(typingTimer);
    if (detail.state === "started") {
      $("typing").textContent = `${nameOf(detail.user_id)} is typing…`;
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
