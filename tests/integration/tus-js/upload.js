// Uploads a file through the tus routes with the real tus-js-client, as a browser app or Uppy would
// (Node's HTTP stack instead of XHR). Run by tests/integration/tests/tus_js_client.rs:
//
//   node upload.js <endpoint> <token> <file> <chunkSize> [resume]
//
// <endpoint> is POST /api/v1/emails/{messageId}/tus. With `resume`, the first upload is aborted after
// its first chunk and a second tus.Upload resumes it from its URL (HEAD, then the remaining PATCHes).
// Prints {"url": ..., "resumed": bool} on success; exits 1 with the error otherwise.
'use strict';

const fs = require('fs');
const path = require('path');
const tus = require('tus-js-client');

const [endpoint, token, file, chunkSize, mode] = process.argv.slice(2);
const data = fs.readFileSync(file);

function options(extra) {
  return {
    endpoint,
    chunkSize: Number(chunkSize),
    headers: { Authorization: `Bearer ${token}` },
    metadata: { filename: path.basename(file), filetype: 'application/octet-stream' },
    // 423 (another PATCH of the upload in progress) and 409 are retried by tus-js-client.
    retryDelays: [0, 1000, 3000, 5000],
    ...extra,
  };
}

function fail(err) {
  process.stderr.write(`tus upload failed: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
}

function finish(upload, resumed) {
  process.stdout.write(JSON.stringify({ url: upload.url, resumed }) + '\n');
}

if (mode === 'resume') {
  let aborted = false;
  const first = new tus.Upload(data, options({
    onChunkComplete(chunk, sent) {
      if (aborted) return;
      aborted = true;
      // The client goes away after its first chunk; a new one picks the upload up by its URL.
      first.abort(false).then(() => {
        const url = first.url;
        const second = new tus.Upload(data, options({
          uploadUrl: url,
          onSuccess: () => finish(second, sent > 0),
          onError: fail,
        }));
        second.start();
      }, fail);
    },
    onSuccess: () => fail(new Error('the first upload should have been aborted')),
    onError: fail,
  }));
  first.start();
} else {
  const upload = new tus.Upload(data, options({
    onSuccess: () => finish(upload, false),
    onError: fail,
  }));
  upload.start();
}
