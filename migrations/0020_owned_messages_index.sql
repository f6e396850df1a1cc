-- 0020_owned_messages_index: the listing of a user's own messages (GET /api/v1/emails, newest first,
-- keyset paged on (received_at, id)) reads this index in order and stops at the page's end, instead of
-- sorting every message of the tenant. Live messages only, as the listing shows them.
CREATE INDEX email_messages_owner_received_idx
    ON email_messages (tenant_id, owner_user_id, received_at DESC, id DESC)
    WHERE NOT is_deleted;
