-- Version 8: when the markers of members from before version 5 last moved.
--
-- Version 5 gave receipt events their time (the send time of the message they mark, for
-- receipts logged before it) but left `members.read_at` and `delivered_at` NULL for
-- markers that had moved before it, so a summary said `peer_read_at: null` beside a
-- `receipt.read` event with a time. The same rule now fills both: a marker that stands
-- at a seq moved there no earlier than that message was sent. Only rows with a marker
-- and no time change (none written since version 5 match).

UPDATE members SET read_at = (
    SELECT m.created_at FROM messages AS m
    WHERE m.conversation_id = members.conversation_id AND m.seq = members.read_seq
) WHERE read_at IS NULL AND read_seq > 0;

UPDATE members SET delivered_at = (
    SELECT m.created_at FROM messages AS m
    WHERE m.conversation_id = members.conversation_id AND m.seq = members.delivered_seq
) WHERE delivered_at IS NULL AND delivered_seq > 0;
