//! The streaming content inspector on any bytes, cut into chunks where the input says: never panics,
//! and once it has refused the content it keeps refusing it.
#![no_main]

use attachment_policy::ContentInspector;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // First byte: where the declared type and extension come from; second: the chunk size.
    let [kind, chunk, rest @ ..] = data else {
        return;
    };
    let (declared, ext) = match kind % 5 {
        0 => (None, None),
        1 => (Some("text/html"), Some("html")),
        2 => (Some("image/svg+xml"), Some("svg")),
        3 => (Some("application/pdf"), Some("pdf")),
        _ => (Some("text/plain"), Some("txt")),
    };
    let mut inspector = ContentInspector::new(declared, ext);
    let mut refused = false;
    for piece in rest.chunks(usize::from(*chunk).max(1)) {
        let fed = inspector.feed(piece);
        assert!(!(refused && fed.is_ok()), "accepted a chunk after refusing");
        refused |= fed.is_err();
    }
    let finished = inspector.finish();
    assert!(!(refused && finished.is_ok()), "finished after refusing");
});
