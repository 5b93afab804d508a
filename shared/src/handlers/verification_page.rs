//! The verification page people reach by scanning a stamp's QR code: `GET /v1/verify/{serial}`
//! answered as HTML when the browser prefers it (API.md, "Verification for people"). Bahasa
//! Indonesia unless `?lang=en`; no personal data, only what the JSON answer carries; a drop zone
//! that checks a PDF with `POST /v1/verify` on the same origin.

use chrono::{DateTime, Datelike, FixedOffset, Timelike, Utc};
use serde_json::json;

use crate::http::{ApiRequest, ApiResponse};

/// The page's language: Indonesian first, English on request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Id,
    En,
}

impl Lang {
    pub fn of(req: &ApiRequest) -> Lang {
        match req.query.get("lang").map(String::as_str) {
            Some("en") => Lang::En,
            _ => Lang::Id,
        }
    }

    fn code(self) -> &'static str {
        match self {
            Lang::Id => "id",
            Lang::En => "en",
        }
    }
}

/// Whether the client prefers HTML to JSON: `text/html` (or XHTML) is acceptable with a higher
/// quality than JSON. `*/*` alone, a missing header or a tie means JSON, so programs get JSON.
pub fn prefers_html(accept: Option<&str>) -> bool {
    let Some(accept) = accept else { return false };
    let mut html = 0.0_f32;
    let mut json = 0.0_f32;
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok()))
            .next()
            .unwrap_or(1.0)
            .clamp(0.0, 1.0);
        match media.as_str() {
            "text/html" | "application/xhtml+xml" => html = html.max(q),
            "application/json" | "application/problem+json" | "application/*" => json = json.max(q),
            _ => {}
        }
    }
    html > 0.0 && html > json
}

/// What the registry says about the serial in the URL.
pub enum Finding<'a> {
    Registered { serial: &'a str, stamped_at: DateTime<Utc>, document_sha256: &'a str },
    /// Unknown or malformed: nothing is echoed but a well-formed serial.
    NotRegistered { serial: Option<&'a str> },
    /// The registry could not be read (the answer says to try again, never "not registered").
    Unavailable,
}

struct Text {
    title: &'static str,
    registered: &'static str,
    registered_lead: &'static str,
    not_registered: &'static str,
    not_registered_lead: &'static str,
    unavailable: &'static str,
    unavailable_lead: &'static str,
    serial: &'static str,
    stamped_at: &'static str,
    sha256: &'static str,
    sha256_help: &'static str,
    check_title: &'static str,
    check_help: &'static str,
    choose: &'static str,
    drop: &'static str,
    other_language: &'static str,
    other_language_code: &'static str,
    home: &'static str,
    months: [&'static str; 12],
}

const ID: Text = Text {
    title: "Verifikasi e-Meterai",
    registered: "Terdaftar",
    registered_lead: "Nomor seri ini adalah e-Meterai yang terdaftar.",
    not_registered: "Tidak terdaftar",
    not_registered_lead: "Nomor seri ini tidak terdaftar sebagai e-Meterai. Periksa kembali kode QR atau nomor serinya; meterai dengan nomor seri yang tidak terdaftar tidak sah.",
    unavailable: "Belum dapat diperiksa",
    unavailable_lead: "Layanan sedang sibuk. Muat ulang halaman ini sebentar lagi.",
    serial: "Nomor seri",
    stamped_at: "Dibubuhkan pada",
    sha256: "SHA-256 dokumen bermeterai",
    sha256_help: "Sidik jari berkas yang dibubuhi meterai. Salinan dengan sidik jari lain telah diubah setelah dibubuhi meterai.",
    check_title: "Periksa berkas PDF",
    check_help: "Pilih atau seret berkas PDF bermeterai ke sini untuk memeriksa tanda tangan e-Meterai di dalamnya. Berkas hanya diperiksa, tidak disimpan.",
    choose: "Pilih PDF",
    drop: "atau seret berkas ke kotak ini",
    other_language: "English",
    other_language_code: "en",
    home: "Beli dan bubuhkan e-Meterai",
    months: [
        "Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus", "September", "Oktober", "November",
        "Desember",
    ],
};

const EN: Text = Text {
    title: "e-Meterai verification",
    registered: "Registered",
    registered_lead: "This serial number is a registered e-Meterai.",
    not_registered: "Not registered",
    not_registered_lead: "This serial number is not a registered e-Meterai. Check the QR code or the serial number again; a stamp whose serial is not registered is not valid.",
    unavailable: "Cannot be checked yet",
    unavailable_lead: "The service is busy. Reload this page in a moment.",
    serial: "Serial number",
    stamped_at: "Stamped at",
    sha256: "SHA-256 of the stamped document",
    sha256_help: "The fingerprint of the stamped file. A copy with another fingerprint was changed after it was stamped.",
    check_title: "Check a PDF file",
    check_help: "Choose or drop a stamped PDF here to check the e-Meterai signatures in it. The file is only checked, never kept.",
    choose: "Choose PDF",
    drop: "or drop the file on this box",
    other_language: "Bahasa Indonesia",
    other_language_code: "id",
    home: "Buy and apply e-Meterai",
    months: [
        "January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November",
        "December",
    ],
};

fn text(lang: Lang) -> &'static Text {
    match lang {
        Lang::Id => &ID,
        Lang::En => &EN,
    }
}

/// Strings the drop zone's script shows, by language.
fn script_text(lang: Lang) -> serde_json::Value {
    match lang {
        Lang::Id => json!({
            "checking": "Memeriksa…",
            "none": "Berkas ini tidak memuat e-Meterai.",
            "stamp": "e-Meterai",
            "signature_valid": ["Tanda tangan sah", "Tanda tangan TIDAK sah"],
            "registered": ["Nomor seri terdaftar", "Nomor seri TIDAK terdaftar"],
            "unmodified": ["Tidak diubah sejak dibubuhi meterai", "DIUBAH setelah dibubuhi meterai"],
            "same_file": "Berkas ini sama persis dengan dokumen bermeterai yang terdaftar untuk nomor seri ini.",
            "this_serial_missing": "Berkas ini tidak memuat e-Meterai dengan nomor seri di halaman ini.",
            "errors": {
                "not_pdf": "Berkas ini bukan PDF.",
                "corrupt": "PDF ini rusak dan tidak dapat dibaca.",
                "encrypted": "PDF ini terkunci dengan kata sandi dan tidak dapat diperiksa.",
                "too_large": "Berkas lebih besar dari 800.000 byte.",
                "payload_too_large": "Berkas lebih besar dari 800.000 byte.",
                "network": "Tidak ada koneksi. Periksa jaringan Anda lalu coba lagi.",
                "other": "Pemeriksaan gagal. Coba lagi sebentar lagi."
            }
        }),
        Lang::En => json!({
            "checking": "Checking…",
            "none": "This file carries no e-Meterai.",
            "stamp": "e-Meterai",
            "signature_valid": ["Signature valid", "Signature NOT valid"],
            "registered": ["Serial registered", "Serial NOT registered"],
            "unmodified": ["Unchanged since stamped", "CHANGED after it was stamped"],
            "same_file": "This file is exactly the stamped document registered for this serial.",
            "this_serial_missing": "This file carries no e-Meterai with the serial on this page.",
            "errors": {
                "not_pdf": "This file is not a PDF.",
                "corrupt": "This PDF is damaged and cannot be read.",
                "encrypted": "This PDF is locked with a password and cannot be checked.",
                "too_large": "The file is larger than 800,000 bytes.",
                "payload_too_large": "The file is larger than 800,000 bytes.",
                "network": "No connection. Check your network and try again.",
                "other": "The check failed. Try again in a moment."
            }
        }),
    }
}

/// Escapes text for HTML element content and attribute values.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A time as people in Indonesia read it: Western Indonesia Time (UTC+7).
fn wib(at: DateTime<Utc>, lang: Lang) -> String {
    let offset = FixedOffset::east_opt(7 * 3600).unwrap_or_else(|| FixedOffset::east_opt(0).unwrap_or_else(|| unreachable!()));
    let local = at.with_timezone(&offset);
    let month = text(lang).months[local.month0() as usize];
    format!("{} {month} {}, {:02}.{:02} WIB", local.day(), local.year(), local.hour(), local.minute())
}

const STYLE: &str = "\
*{box-sizing:border-box}body{margin:0;font:16px/1.5 system-ui,sans-serif;color:#1a1a1a;background:#f6f6f4}\
main{max-width:40rem;margin:0 auto;padding:1rem}header{display:flex;justify-content:space-between;gap:1rem;flex-wrap:wrap;align-items:baseline}\
h1{font-size:1.4rem;margin:.5rem 0}a{color:#0b4f9c}\
.verdict{border-radius:.5rem;padding:1rem;margin:1rem 0;border:2px solid}\
.ok{background:#e7f5ea;border-color:#1d6b2f}.bad{background:#fdecea;border-color:#a4161a}.wait{background:#fff6dd;border-color:#7a5a00}\
.verdict h2{margin:0 0 .25rem;font-size:1.3rem}dl{margin:0}dt{font-weight:600;margin-top:.75rem}dd{margin:0;overflow-wrap:anywhere}\
code{font-size:.9rem}.help{color:#4a4a4a;font-size:.9rem;margin:.25rem 0 0}\
.drop{border:2px dashed #555;border-radius:.5rem;padding:1rem;margin-top:.5rem;background:#fff}.drop.over{background:#eef4fb}\
label.button{display:inline-block;background:#0b4f9c;color:#fff;padding:.6rem 1rem;border-radius:.4rem;cursor:pointer;font-weight:600}\
input[type=file]{position:absolute;width:1px;height:1px;opacity:0}input[type=file]:focus-visible+label.button{outline:3px solid #1a1a1a;outline-offset:2px}\
ul.results{padding-left:1.2rem}";

const SCRIPT: &str = r#"
const T = JSON.parse(document.getElementById('verify-text').textContent);
const zone = document.getElementById('drop'), input = document.getElementById('pdf'), out = document.getElementById('result');
const expected = zone.dataset.serial || null, expectedSha = zone.dataset.sha256 || null;
function say(nodes) { out.replaceChildren(...nodes); }
function p(text) { const e = document.createElement('p'); e.textContent = text; return e; }
async function check(file) {
  if (!file) return;
  say([p(T.checking)]);
  let answer, body;
  try {
    const bytes = await file.arrayBuffer();
    const digest = crypto.subtle ? await crypto.subtle.digest('SHA-256', bytes) : null;
    const sha = digest ? [...new Uint8Array(digest)].map(b => b.toString(16).padStart(2, '0')).join('') : null;
    answer = await fetch('/v1/verify', { method: 'POST', headers: { 'Content-Type': 'application/pdf', 'Accept': 'application/json' }, body: bytes });
    body = await answer.json().catch(() => ({}));
    body.sha = sha;
  } catch (e) { say([p(T.errors.network)]); return; }
  if (!answer.ok) { say([p(T.errors[body.code] || T.errors.other)]); return; }
  const stamps = body.stamps || [];
  if (!stamps.length) { say([p(T.none)]); return; }
  const nodes = [];
  if (expectedSha && body.sha === expectedSha) nodes.push(p(T.same_file));
  if (expected && !stamps.some(s => s.serial === expected)) nodes.push(p(T.this_serial_missing));
  for (const s of stamps) {
    const h = document.createElement('h3'); h.textContent = T.stamp + ' ' + s.serial;
    const ul = document.createElement('ul'); ul.className = 'results';
    for (const [key, ok] of [['signature_valid', s.signature_valid], ['registered', s.registered], ['unmodified', s.unmodified_since_stamp]]) {
      const li = document.createElement('li'); li.textContent = (ok ? '✓ ' : '✗ ') + T[key][ok ? 0 : 1]; ul.append(li);
    }
    nodes.push(h, ul);
  }
  say(nodes);
}
input.addEventListener('change', () => check(input.files[0]));
zone.addEventListener('dragover', e => { e.preventDefault(); zone.classList.add('over'); });
zone.addEventListener('dragleave', () => zone.classList.remove('over'));
zone.addEventListener('drop', e => { e.preventDefault(); zone.classList.remove('over'); check(e.dataTransfer.files[0]); });
"#;

/// The page for `finding`, with its HTTP status (200 registered, 404 not registered, 503 when
/// the registry could not be read).
pub fn page(lang: Lang, finding: &Finding<'_>) -> ApiResponse {
    let t = text(lang);
    let (status, verdict, zone_data) = match finding {
        Finding::Registered { serial, stamped_at, document_sha256 } => (
            200,
            format!(
                "<section class=\"verdict ok\" aria-labelledby=\"verdict\"><h2 id=\"verdict\">✓ {}</h2><p>{}</p><dl>\
                 <dt>{}</dt><dd><code>{}</code></dd><dt>{}</dt><dd><time datetime=\"{}\">{}</time></dd>\
                 <dt>{}</dt><dd><code>{}</code><p class=\"help\">{}</p></dd></dl></section>",
                t.registered,
                t.registered_lead,
                t.serial,
                escape(serial),
                t.stamped_at,
                escape(&crate::domain::time::format(*stamped_at)),
                escape(&wib(*stamped_at, lang)),
                t.sha256,
                escape(document_sha256),
                t.sha256_help,
            ),
            format!(" data-serial=\"{}\" data-sha256=\"{}\"", escape(serial), escape(document_sha256)),
        ),
        Finding::NotRegistered { serial } => (
            404,
            format!(
                "<section class=\"verdict bad\" aria-labelledby=\"verdict\"><h2 id=\"verdict\">✗ {}</h2><p>{}</p>{}</section>",
                t.not_registered,
                t.not_registered_lead,
                serial
                    .map(|s| format!("<dl><dt>{}</dt><dd><code>{}</code></dd></dl>", t.serial, escape(s)))
                    .unwrap_or_default(),
            ),
            String::new(),
        ),
        Finding::Unavailable => (
            503,
            format!(
                "<section class=\"verdict wait\" aria-labelledby=\"verdict\"><h2 id=\"verdict\">{}</h2><p>{}</p></section>",
                t.unavailable, t.unavailable_lead
            ),
            String::new(),
        ),
    };
    let nonce = hex::encode(rand::random::<[u8; 16]>());
    // JSON inside <script>: "</" is written "<\/" so the text cannot close the element.
    let strings = script_text(lang).to_string().replace("</", "<\\/");
    let body = format!(
        "<!doctype html><html lang=\"{lang_code}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>{title}</title><style nonce=\"{nonce}\">{STYLE}</style></head>\
         <body><main><header><h1>{title}</h1><a href=\"?lang={other_code}\" lang=\"{other_code}\">{other}</a></header>\
         {verdict}\
         <section aria-labelledby=\"check-title\"><h2 id=\"check-title\">{check_title}</h2><p>{check_help}</p>\
         <div class=\"drop\" id=\"drop\"{zone_data}><input type=\"file\" id=\"pdf\" accept=\"application/pdf,.pdf\">\
         <label class=\"button\" for=\"pdf\">{choose}</label> <span>{drop}</span></div>\
         <div id=\"result\" role=\"status\" aria-live=\"polite\"></div></section>\
         <p><a href=\"/{home_query}\">{home}</a></p></main>\
         <script type=\"application/json\" id=\"verify-text\">{strings}</script>\
         <script nonce=\"{nonce}\">{SCRIPT}</script></body></html>",
        lang_code = lang.code(),
        title = t.title,
        other_code = t.other_language_code,
        other = t.other_language,
        check_title = t.check_title,
        check_help = t.check_help,
        choose = t.choose,
        drop = t.drop,
        home = t.home,
        home_query = if lang == Lang::En { "?lang=en" } else { "" },
    );
    let csp = format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; connect-src 'self'; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    );
    ApiResponse { status, headers: vec![("content-type", "text/html; charset=utf-8".into())], body }
        .with_header("content-security-policy", csp)
        .with_header("vary", "Accept")
        .with_header("cache-control", "no-cache")
        .with_header("x-content-type-options", "nosniff")
        .with_header("referrer-policy", "no-referrer")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_get_html_programs_get_json() {
        let chrome = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";
        assert!(prefers_html(Some(chrome)));
        assert!(prefers_html(Some("text/html")));
        assert!(!prefers_html(None));
        assert!(!prefers_html(Some("*/*")));
        assert!(!prefers_html(Some("application/json")));
        assert!(!prefers_html(Some("application/json, text/html")), "a tie is JSON");
        assert!(!prefers_html(Some("text/html;q=0.5, application/json")));
        assert!(prefers_html(Some("application/json;q=0.5, text/html")));
        assert!(!prefers_html(Some("text/html;q=0")));
        assert!(!prefers_html(Some(";;;,,q=,text/html;q=abc;q=0")), "garbage never panics");
    }

    fn registered() -> ApiResponse {
        let at = DateTime::parse_from_rfc3339("2026-11-28T10:05:00Z").expect("time").with_timezone(&Utc);
        page(Lang::Id, &Finding::Registered { serial: "0123456789ABCDEFGHIJKL", stamped_at: at, document_sha256: "ab12" })
    }

    #[test]
    fn registered_page_says_so_in_indonesian_with_wib_time() {
        let r = registered();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(r.header("vary"), Some("Accept"));
        assert!(r.body.contains("<html lang=\"id\">"));
        assert!(r.body.contains("Terdaftar"));
        assert!(r.body.contains("0123456789ABCDEFGHIJKL"));
        assert!(r.body.contains("28 November 2026, 17.05 WIB"), "{}", r.body);
        assert!(r.body.contains("datetime=\"2026-11-28T10:05:00.000Z\""));
        assert!(r.body.contains("ab12"));
    }

    #[test]
    fn script_and_style_run_only_with_this_answers_nonce() {
        let r = registered();
        let csp = r.header("content-security-policy").expect("csp").to_owned();
        let nonce = csp.split("'nonce-").nth(1).and_then(|s| s.split('\'').next()).expect("nonce");
        assert_eq!(nonce.len(), 32);
        assert!(r.body.contains(&format!("<script nonce=\"{nonce}\">")));
        assert!(r.body.contains(&format!("<style nonce=\"{nonce}\">")));
        assert_ne!(registered().header("content-security-policy"), Some(csp.as_str()), "a new nonce each time");
    }

    #[test]
    fn not_registered_is_a_404_page_in_english_on_request() {
        let r = page(Lang::En, &Finding::NotRegistered { serial: Some("0000000000000000000000") });
        assert_eq!(r.status, 404);
        assert!(r.body.contains("<html lang=\"en\">"));
        assert!(r.body.contains("Not registered"));
        assert!(!r.body.contains("Registered</h2>"));
        let unavailable = page(Lang::En, &Finding::Unavailable);
        assert_eq!(unavailable.status, 503);
        assert!(!unavailable.body.contains("Not registered"), "a failed read is never 'not registered'");
    }

    #[test]
    fn nothing_from_the_request_is_written_unescaped() {
        let r = page(Lang::Id, &Finding::NotRegistered { serial: Some("<script>x</script>") });
        assert!(!r.body.contains("<script>x"));
        assert!(r.body.contains("&lt;script&gt;x"));
    }
}
