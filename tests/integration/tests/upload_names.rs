//! Every filename an upload carries is judged, not only the one stored: the ASCII `filename=` beside
//! a `filename*=`, a `?filename=` query beside the header, and both forms in a multipart part, each
//! through the blocked-extension check; names with invisible or formatting characters (zero-width
//! spaces and joiners, soft hyphens, line separators, tag characters, ...) are refused; the default
//! blocked list covers app packages, shell locations, web archives and Office add-ins. A refused
//! upload records nothing.

use integration_tests::{Reply, Stack, Tenant, User, client, login, psql, send};
use reqwest::blocking::Client;

struct Who {
    tenant: Tenant,
    user: User,
    token: String,
    c: Client,
}

fn who() -> Who {
    let mut seed = Stack::get().seed();
    let tenant = seed.tenants.remove(0);
    let user = tenant.user(0).clone();
    let c = client();
    let token = login(&c, &Stack::get().base_url, &user).access;
    Who {
        tenant,
        user,
        token,
        c,
    }
}

impl Who {
    fn message(&self, n: usize) -> String {
        self.tenant.message_of(&self.user, n).id.clone()
    }

    /// A raw upload with this `Content-Disposition` and query.
    fn raw(&self, message: &str, disposition: &str, query: &str) -> Reply {
        let url = Stack::get().url(&format!("/api/v1/emails/{message}/attachments{query}"));
        send(
            self.c
                .post(url)
                .bearer_auth(&self.token)
                .header("content-type", "text/plain")
                .header("content-disposition", disposition)
                .body("plain text, nothing active"),
        )
    }

    /// A multipart upload of one part with this part `Content-Disposition`.
    fn multipart(&self, message: &str, part_disposition: &str) -> Reply {
        let boundary = format!("names-{}", uuid::Uuid::new_v4().simple());
        let body = format!(
            "--{boundary}\r\nContent-Disposition: {part_disposition}\r\nContent-Type: text/plain\r\n\r\n\
             plain text\r\n--{boundary}--\r\n"
        );
        send(
            self.c
                .post(Stack::get().url(&format!("/api/v1/emails/{message}/attachments")))
                .bearer_auth(&self.token)
                .header(
                    "content-type",
                    format!("multipart/form-data; boundary={boundary}"),
                )
                .body(body),
        )
    }
}

fn rows(message: &str) -> String {
    psql(&format!(
        "SELECT count(*) FROM email_attachments WHERE message_id = '{message}'"
    ))
}

#[test]
fn every_name_a_raw_upload_carries_is_checked() {
    let u = who();
    let msg = u.message(0);
    for (disposition, query) in [
        // The ASCII fallback a client may show or save under, beside an innocent filename*.
        (
            "attachment; filename=\"invoice.exe\"; filename*=UTF-8''invoice.pdf",
            "",
        ),
        // The other way round.
        (
            "attachment; filename=\"invoice.pdf\"; filename*=UTF-8''invoice.pdf.exe",
            "",
        ),
        // A filename* in another charset, which the name we store ignores.
        (
            "attachment; filename=\"notes.txt\"; filename*=iso-8859-1''setup.msix",
            "",
        ),
        // RFC 2231 continuations.
        (
            "attachment; filename=\"notes.txt\"; filename*0=\"setup\"; filename*1=\".exe\"",
            "",
        ),
        // The query beside the header, and a second query name.
        ("attachment; filename*=UTF-8''notes.txt", "?filename=run.js"),
        (
            "attachment",
            "?filename=notes.txt&filename=installer.appinstaller",
        ),
    ] {
        let r = u.raw(&msg, disposition, query);
        r.assert_problem(415, "blocked_file_type");
        assert!(
            r.json()["detail"]
                .as_str()
                .is_some_and(|d| d.contains("extension")),
            "{disposition} {query}: {r:?}"
        );
    }
    assert_eq!(rows(&msg), "0", "nothing recorded for a refused upload");
    // An innocent pair still uploads, under the filename* name.
    let r = u.raw(
        &msg,
        "attachment; filename=\"r_sum_.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9.txt",
        "",
    );
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.json()["filename"], "résumé.txt");
}

/// The route's one query parameter is `filename`: any other (a misspelt `filname`, a stray one) is
/// `400 bad_request` before a byte is stored, rather than ignored with the file stored under a name
/// the client did not mean.
#[test]
fn a_query_parameter_other_than_filename_is_refused() {
    let u = who();
    let msg = u.message(0);
    for query in [
        "?filname=notes.txt",
        "?filename=notes.txt&x=1",
        "?filename=notes.txt&filename*=a",
    ] {
        let r = u.raw(&msg, "attachment", query);
        r.assert_problem(400, "bad_request");
        assert!(
            r.json()["detail"]
                .as_str()
                .is_some_and(|d| d.contains("filename")),
            "{query}: {r:?}"
        );
    }
    assert_eq!(rows(&msg), "0", "nothing recorded for a refused upload");
    let r = u.raw(&msg, "attachment", "?filename=notes.txt");
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.json()["filename"], "notes.txt");
}

#[test]
fn invisible_and_format_characters_are_refused() {
    let u = who();
    let msg = u.message(0);
    for encoded in [
        "in%E2%80%8Bvoice.txt",    // U+200B zero-width space
        "a%E2%80%8Db.txt",         // U+200D zero-width joiner
        "a%C2%ADb.txt",            // U+00AD soft hyphen
        "a%E2%80%A8b.txt",         // U+2028 line separator
        "a%E2%80%A9b.txt",         // U+2029 paragraph separator
        "a%E2%81%A0b.txt",         // U+2060 word joiner
        "a%EF%BB%BFb.txt",         // U+FEFF byte order mark
        "a%E3%85%A4.txt",          // U+3164 Hangul filler
        "a%EF%B8%8F.txt",          // U+FE0F variation selector
        "a%F3%A0%80%81.txt",       // U+E0001 language tag
        "report.pdf%E2%80%8B.txt", // hiding an extension from the eye
    ] {
        let r = u.raw(&msg, &format!("attachment; filename*=UTF-8''{encoded}"), "");
        r.assert_problem(422, "invalid_filename");
    }
    // The same characters in a multipart part's name.
    let r = u.multipart(
        &msg,
        "form-data; name=\"file\"; filename*=UTF-8''in%E2%80%8Bvoice.txt",
    );
    r.assert_problem(422, "invalid_filename");
    assert_eq!(rows(&msg), "0");
}

#[test]
fn the_default_list_blocks_packages_shell_locations_archives_and_add_ins() {
    let u = who();
    let msg = u.message(0);
    for name in [
        "notes.one",
        "setup.msix",
        "setup.msixbundle",
        "app.appx",
        "app.appxbundle",
        "setup.appinstaller",
        "query.iqy",
        "sheet.slk",
        "share.library-ms",
        "find.search-ms",
        "find.searchConnector-ms",
        "panel.settingcontent-ms",
        "launch.jnlp",
        "page.mht",
        "page.mhtml",
        "addin.xlam",
        "addin.ppam",
        "addin.xll",
        "bundle.cab",
        "trouble.diagcab",
    ] {
        let r = u.raw(&msg, &format!("attachment; filename=\"{name}\""), "");
        assert_eq!(r.status, 415, "{name}: {r:?}");
        r.assert_problem(415, "blocked_file_type");
    }
    assert_eq!(rows(&msg), "0");
}

#[test]
fn both_forms_of_a_multipart_part_name_are_checked() {
    let u = who();
    let msg = u.message(0);
    for part in [
        "form-data; name=\"file\"; filename=\"notes.txt\"; filename*=UTF-8''notes.exe",
        "form-data; name=\"file\"; filename=\"notes.exe\"; filename*=UTF-8''notes.txt",
        "form-data; name=\"file\"; filename*=UTF-8''setup.msix",
    ] {
        let r = u.multipart(&msg, part);
        r.assert_problem(415, "blocked_file_type");
    }
    assert_eq!(rows(&msg), "0");
    // A part named only by filename* is a file part, stored under that name.
    let r = u.multipart(
        &msg,
        "form-data; name=\"file\"; filename*=UTF-8''r%C3%A9sum%C3%A9.txt",
    );
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.json()["attachments"][0]["filename"], "résumé.txt");
}
