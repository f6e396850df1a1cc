-- 0015_tus_uploads: resumable uploads through the function (tus 1.0.0), on the sessions of 0014.
--
-- A tus upload is an upload session whose bytes come through the ingest component, one PATCH per
-- chunk, instead of straight to storage: each chunk becomes the next part of the session's multipart
-- upload. Its claims are those of a direct upload (claimed_size is Upload-Length), checked before any
-- byte; claimed_sha256 stays NULL until the last chunk, when it is the SHA-256 of every byte received
-- (kept running in hash_state between requests, so nothing is read twice). The last PATCH completes
-- the multipart upload and the session turns `verifying`: from there on it is a direct upload like
-- any other (the worker verifies size, hash, policy, dedup and scan in one read; the janitor aborts an
-- expired open one and its parts).
--
--   protocol      'direct' (parts PUT to presigned URLs) or 'tus' (chunks PATCHed through ingest).
--   upload_offset bytes stored so far (tus Upload-Offset); moves only by a compare-and-swap from the
--                 offset a PATCH started at, so two PATCHes never both advance it.
--   parts_done    multipart parts stored so far (the next chunk is part parts_done + 1).
--   part_etags    the stored parts' ETags, in part order (what CompleteMultipartUpload lists).
--   hash_state    the serialized SHA-256 of the first upload_offset bytes (NULL: nothing yet).
--   patch_token, patch_until
--                 the PATCH in progress, if any: claimed before its body is read, until patch_until
--                 (epoch ms; the longest a PATCH may take). A second PATCH meanwhile is refused (423)
--                 rather than uploading the same part number; a claim whose request died lapses.

ALTER TABLE upload_sessions
    ADD COLUMN protocol      text    NOT NULL DEFAULT 'direct' CHECK (protocol IN ('direct', 'tus')),
    ADD COLUMN upload_offset bigint  NOT NULL DEFAULT 0,
    ADD COLUMN parts_done    integer NOT NULL DEFAULT 0 CHECK (parts_done BETWEEN 0 AND 10000),
    ADD COLUMN part_etags    text[]  NOT NULL DEFAULT '{}',
    ADD COLUMN hash_state    bytea,
    ADD COLUMN patch_token   uuid,
    ADD COLUMN patch_until   bigint,
    ADD CONSTRAINT upload_sessions_offset_in_size
        CHECK (upload_offset BETWEEN 0 AND claimed_size),
    ADD CONSTRAINT upload_sessions_etags_per_part
        CHECK (cardinality(part_etags) = parts_done),
    ADD CONSTRAINT upload_sessions_patch_claim
        CHECK ((patch_token IS NULL) = (patch_until IS NULL));

-- A PATCH moves its session's progress; nothing else of a tus session changes but through 0014's
-- grants (state on completion and termination).
GRANT UPDATE (upload_offset, parts_done, part_etags, hash_state, claimed_sha256, patch_token,
              patch_until) ON upload_sessions TO attachments_app;
