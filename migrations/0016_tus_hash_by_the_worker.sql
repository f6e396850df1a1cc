-- 0016_tus_hash_by_the_worker: a tus upload's SHA-256 comes from the scan worker's one read of the
-- completed object, as a direct upload's does when its client claimed none.
--
-- 0015 kept the running SHA-256 of a tus upload's bytes between its PATCH requests (hash_state) so
-- that the last one knew the file's digest. Hashing in the function cost more than moving the bytes
-- (SHA-256 runs at about 210 MB/s in the guest), while the worker reads every completed object once
-- anyway (size, policy, dedup, scan) and hashes it natively. The last PATCH now turns the session
-- `verifying` with claimed_sha256 NULL, and chunks stream on to storage as they arrive.

ALTER TABLE upload_sessions DROP COLUMN hash_state;
