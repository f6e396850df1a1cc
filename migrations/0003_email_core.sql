-- 0003_email_core: mail accounts, folders and messages, with the indexes a mail client needs.
-- RFC 5322 address fields are renamed rather than quoted (`from` -> from_address, `to` -> to_addresses) so no
-- component query ever needs to remember to quote a reserved word.

CREATE TABLE email_accounts (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    -- NULL for a shared mailbox; messages carry their own owner (email_messages.owner_user_id).
    owner_user_id    uuid,
    email_address    text NOT NULL CHECK (position('@' IN email_address) > 1),
    display_name     text,
    imap_host        text,
    imap_port        integer CHECK (imap_port BETWEEN 1 AND 65535),
    smtp_host        text,
    smtp_port        integer CHECK (smtp_port BETWEEN 1 AND 65535),
    -- A reference into a secret store, never the secret itself.
    credentials_ref  text,
    created_at       bigint NOT NULL DEFAULT app_now_ms(),
    updated_at       bigint NOT NULL DEFAULT app_now_ms(),
    CONSTRAINT email_accounts_tenant_id_id_key UNIQUE (tenant_id, id),
    CONSTRAINT email_accounts_owner_fk FOREIGN KEY (tenant_id, owner_user_id) REFERENCES users (tenant_id, id)
);
CREATE UNIQUE INDEX email_accounts_address_key ON email_accounts (tenant_id, lower(email_address));
CREATE TRIGGER email_accounts_touch BEFORE UPDATE ON email_accounts
    FOR EACH ROW EXECUTE FUNCTION app_touch_updated_at();

CREATE TABLE email_folders (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id        uuid NOT NULL,
    account_id       uuid NOT NULL,
    parent_id        uuid,
    name             text NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    -- Full IMAP mailbox name (with the server's hierarchy delimiter), unique per account.
    path             text NOT NULL CHECK (length(path) BETWEEN 1 AND 1024),
    -- RFC 6154 special-use role, if any.
    special_use      text CHECK (special_use IN ('inbox', 'sent', 'drafts', 'trash', 'junk', 'archive', 'all', 'flagged')),
    imap_uidvalidity bigint,
    imap_uidnext     bigint,
    created_at       bigint NOT NULL DEFAULT app_now_ms(),
    updated_at       bigint NOT NULL DEFAULT app_now_ms(),
    CONSTRAINT email_folders_tenant_id_id_key UNIQUE (tenant_id, id),
    CONSTRAINT email_folders_path_key UNIQUE (account_id, path),
    CONSTRAINT email_folders_account_fk FOREIGN KEY (tenant_id, account_id) REFERENCES email_accounts (tenant_id, id),
    CONSTRAINT email_folders_parent_fk FOREIGN KEY (tenant_id, parent_id) REFERENCES email_folders (tenant_id, id)
);
CREATE UNIQUE INDEX email_folders_special_use_key ON email_folders (account_id, special_use) WHERE special_use IS NOT NULL;
CREATE TRIGGER email_folders_touch BEFORE UPDATE ON email_folders
    FOR EACH ROW EXECUTE FUNCTION app_touch_updated_at();

CREATE TABLE email_messages (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id           uuid NOT NULL,
    account_id          uuid NOT NULL,
    folder_id           uuid NOT NULL,
    owner_user_id       uuid NOT NULL,
    -- RFC 5322 identification fields, stored without the angle brackets.
    message_id          text,
    in_reply_to         text,
    references_ids      text[] NOT NULL DEFAULT '{}',
    -- Conversation: a new message starts its own thread; ingest copies the parent's thread_id when
    -- in_reply_to/references_ids resolve to a known message of the account.
    thread_id           uuid NOT NULL DEFAULT gen_random_uuid(),
    imap_uid            bigint CHECK (imap_uid > 0),
    subject             text NOT NULL DEFAULT '',
    from_address        text NOT NULL,            -- RFC 5322 From
    sender_address      text,                     -- Sender
    reply_to_addresses  text[] NOT NULL DEFAULT '{}',
    to_addresses        text[] NOT NULL DEFAULT '{}',  -- To
    cc_addresses        text[] NOT NULL DEFAULT '{}',
    bcc_addresses       text[] NOT NULL DEFAULT '{}',
    body_text           text NOT NULL DEFAULT '',
    size_bytes          bigint NOT NULL DEFAULT 0 CHECK (size_bytes >= 0),
    sent_at             bigint,                   -- Date: header, epoch ms (absent or unparsable -> NULL)
    received_at         bigint NOT NULL DEFAULT app_now_ms(),
    is_read             boolean NOT NULL DEFAULT false,
    is_flagged          boolean NOT NULL DEFAULT false,
    is_answered         boolean NOT NULL DEFAULT false,
    is_draft            boolean NOT NULL DEFAULT false,
    is_deleted          boolean NOT NULL DEFAULT false,
    deleted_at          bigint,
    -- Subject weighs more than body. 'simple' (no stemming) because mail is multilingual; the body is capped
    -- so one huge message cannot exceed tsvector's 1 MB limit and fail ingest.
    search_vector       tsvector GENERATED ALWAYS AS (
                            setweight(to_tsvector('simple'::regconfig, subject), 'A')
                            || setweight(to_tsvector('simple'::regconfig, left(body_text, 200000)), 'B')
                        ) STORED,
    created_at          bigint NOT NULL DEFAULT app_now_ms(),
    updated_at          bigint NOT NULL DEFAULT app_now_ms(),
    CONSTRAINT email_messages_tenant_id_id_key UNIQUE (tenant_id, id),
    -- Column order serves the lookups: "this Message-ID in this account" (threading, dedup on re-sync) and
    -- "UIDs of this folder" (IMAP sync ranges); as sets they are (message_id, account_id), (imap_uid, folder_id).
    CONSTRAINT email_messages_message_id_key UNIQUE (account_id, message_id),
    CONSTRAINT email_messages_imap_uid_key UNIQUE (folder_id, imap_uid),
    CONSTRAINT email_messages_account_fk FOREIGN KEY (tenant_id, account_id) REFERENCES email_accounts (tenant_id, id),
    CONSTRAINT email_messages_folder_fk FOREIGN KEY (tenant_id, folder_id) REFERENCES email_folders (tenant_id, id),
    CONSTRAINT email_messages_owner_fk FOREIGN KEY (tenant_id, owner_user_id) REFERENCES users (tenant_id, id),
    CONSTRAINT email_messages_deleted_consistent CHECK (is_deleted = (deleted_at IS NOT NULL))
);
-- Folder view: newest first, live messages only.
CREATE INDEX email_messages_folder_received_idx ON email_messages (folder_id, received_at DESC) WHERE NOT is_deleted;
-- Conversation view.
CREATE INDEX email_messages_thread_idx ON email_messages (thread_id, received_at);
-- Unread counts and "unread only" filters stay small: most mail is read.
CREATE INDEX email_messages_unread_idx ON email_messages (folder_id, received_at DESC) WHERE NOT is_read AND NOT is_deleted;
-- Full-text search over subject + body. Note: under RLS the planner may only use it for quals it can evaluate
-- before the tenant policy, and @@ is not leakproof; a search route should therefore also filter on an indexed
-- leakproof column (folder_id/account_id) or run through a SECURITY DEFINER search function.
CREATE INDEX email_messages_search_idx ON email_messages USING gin (search_vector);
-- Time-range scans (retention, exports, "received last week"): rows arrive roughly in time order, so BRIN
-- summarises them in a few pages instead of a B-tree per column.
CREATE INDEX email_messages_received_brin ON email_messages USING brin (received_at);
CREATE INDEX email_messages_sent_brin ON email_messages USING brin (sent_at);
CREATE TRIGGER email_messages_touch BEFORE UPDATE ON email_messages
    FOR EACH ROW EXECUTE FUNCTION app_touch_updated_at();

-- Row-level security --------------------------------------------------------------------------------------

ALTER TABLE email_accounts ENABLE ROW LEVEL SECURITY;
ALTER TABLE email_accounts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON email_accounts
    USING (tenant_id = (SELECT app_current_tenant_id()))
    WITH CHECK (tenant_id = (SELECT app_current_tenant_id()));

ALTER TABLE email_folders ENABLE ROW LEVEL SECURITY;
ALTER TABLE email_folders FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON email_folders
    USING (tenant_id = (SELECT app_current_tenant_id()))
    WITH CHECK (tenant_id = (SELECT app_current_tenant_id()));

ALTER TABLE email_messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE email_messages FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON email_messages
    USING (tenant_id = (SELECT app_current_tenant_id()))
    WITH CHECK (tenant_id = (SELECT app_current_tenant_id()));

-- Grants: the edge layer reads mail and may file new messages (sync/ingest) and change flags; removal is a
-- soft delete (is_deleted), so no DELETE.
GRANT SELECT, INSERT ON email_accounts, email_folders, email_messages TO attachments_app;
GRANT UPDATE (display_name, imap_host, imap_port, smtp_host, smtp_port, credentials_ref)
    ON email_accounts TO attachments_app;
GRANT UPDATE (name, path, parent_id, special_use, imap_uidvalidity, imap_uidnext) ON email_folders TO attachments_app;
GRANT UPDATE (folder_id, thread_id, imap_uid, is_read, is_flagged, is_answered, is_draft, is_deleted, deleted_at)
    ON email_messages TO attachments_app;
