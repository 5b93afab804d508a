//! The applicant web app's static files (`web/`), served at `/` as CloudFront serves them from
//! the web bucket on AWS: every path outside `/v1/` that no API route claims is a file of the
//! folder. Text files are gzip-compressed for clients that accept it (CloudFront compresses
//! too), and an ETag lets a reload revalidate instead of downloading again.

use std::io::Write;
use std::path::{Component, Path, PathBuf};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flate2::Compression;
use flate2::write::GzEncoder;
use percent_encoding::percent_decode_str;
use sha2::{Digest, Sha256};

/// Files larger than this are not served (the folder holds a small app and pdf.js).
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;
/// Below this, compressing costs more than it saves.
const MIN_GZIP_BYTES: usize = 1024;

/// Whether a request for `path` belongs to the static site rather than the API: the API lives
/// under `/v1/` (CloudFront's `/v1/*` behaviour) and answers its own 404s there.
pub fn is_site_path(path: &str) -> bool {
    path != "/v1" && !path.starts_with("/v1/")
}

/// The file under `root` that `url_path` names (`/` is `index.html`); `None` for anything that
/// could step outside `root`: `..`, absolute or Windows-style parts, NUL, bad percent-encoding.
pub fn resolve(root: &Path, url_path: &str) -> Option<PathBuf> {
    let decoded = percent_decode_str(url_path).decode_utf8().ok()?;
    if decoded.contains('\0') || decoded.contains('\\') {
        return None;
    }
    let relative = decoded.trim_start_matches('/');
    let relative = if relative.is_empty() || relative.ends_with('/') {
        format!("{relative}index.html")
    } else {
        relative.to_owned()
    };
    let mut out = root.to_path_buf();
    for component in Path::new(&relative).components() {
        match component {
            Component::Normal(part) => {
                // Hidden files (dot files) are never part of the site.
                if part.to_str().is_none_or(|p| p.starts_with('.')) {
                    return None;
                }
                out.push(part);
            }
            _ => return None,
        }
    }
    Some(out)
}

/// The `Content-Type` of a site file, by extension.
pub fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "webmanifest" => "application/manifest+json",
        "wasm" => "application/wasm",
        "txt" => "text/plain; charset=utf-8",
        "pdf" => "application/pdf",
        "ttf" => "font/ttf",
        "pfb" => "application/octet-stream",
        _ => "application/octet-stream",
    }
}

fn compressible(content_type: &str) -> bool {
    content_type.starts_with("text/")
        || content_type.starts_with("application/json")
        || content_type.starts_with("application/manifest")
        || content_type.starts_with("image/svg")
        || content_type == "application/wasm"
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or_default().trim();
            let refused = parts.any(|p| matches!(p.trim().replace(' ', "").as_str(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
            name.eq_ignore_ascii_case("gzip") && !refused
        })
}

fn not_found() -> Response {
    let mut response = (StatusCode::NOT_FOUND, "Not found\n").into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

/// Answers a GET or HEAD for `url_path` from the folder `root`.
pub async fn serve(root: &Path, method: &Method, url_path: &str, headers: &HeaderMap) -> Response {
    let Some(path) = resolve(root, url_path) else { return not_found() };
    let bytes = match tokio::fs::metadata(&path).await {
        Ok(meta) if meta.is_file() && meta.len() <= MAX_FILE_BYTES => match tokio::fs::read(&path).await {
            Ok(bytes) => bytes,
            Err(_) => return not_found(),
        },
        _ => return not_found(),
    };
    let content_type = content_type(&path);
    let etag = format!("\"{}\"", hex::encode(&Sha256::digest(&bytes)[..12]));
    let matches_etag = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim().trim_start_matches("W/") == etag));
    let mut response = if matches_etag {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let gzip = compressible(content_type) && bytes.len() >= MIN_GZIP_BYTES && accepts_gzip(headers);
        let (body, encoded) = if gzip {
            let mut encoder = GzEncoder::new(Vec::with_capacity(bytes.len() / 3), Compression::best());
            match encoder.write_all(&bytes).and_then(|()| encoder.finish()) {
                Ok(compressed) => (compressed, true),
                Err(_) => (bytes, false),
            }
        } else {
            (bytes, false)
        };
        let length = body.len();
        let mut response =
            if *method == Method::HEAD { Response::new(Body::empty()) } else { Response::new(Body::from(body)) };
        let h = response.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        if encoded {
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        response
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    // Revalidate every time locally, so an edit shows on reload (the deploy sets edge caching).
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_folder() {
        let root = Path::new("/srv/web");
        assert_eq!(resolve(root, "/"), Some(PathBuf::from("/srv/web/index.html")));
        assert_eq!(resolve(root, "/js/app.js"), Some(PathBuf::from("/srv/web/js/app.js")));
        assert_eq!(resolve(root, "/vendor/"), Some(PathBuf::from("/srv/web/vendor/index.html")));
        assert_eq!(resolve(root, "/a%20b.css"), Some(PathBuf::from("/srv/web/a b.css")));
        for hostile in ["/../etc/passwd", "/js/../../x", "/%2e%2e/x", "/a%00b", "/.git/config", "/a\\..\\b", "/%ff"] {
            assert_eq!(resolve(root, hostile), None, "{hostile}");
        }
    }

    #[test]
    fn api_paths_are_not_site_paths() {
        assert!(is_site_path("/"));
        assert!(is_site_path("/js/app.js"));
        assert!(is_site_path("/v1x"));
        assert!(!is_site_path("/v1"));
        assert!(!is_site_path("/v1/quota"));
    }

    #[test]
    fn gzip_only_when_accepted() {
        let mut h = HeaderMap::new();
        assert!(!accepts_gzip(&h));
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip, deflate, br"));
        assert!(accepts_gzip(&h));
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("br, gzip;q=0"));
        assert!(!accepts_gzip(&h));
    }

    #[tokio::test]
    async fn serves_compresses_and_revalidates() {
        let dir = std::env::temp_dir().join(format!("emeterai-web-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).expect("dir");
        let text = "body { color: black; }\n".repeat(200);
        std::fs::write(dir.join("app.css"), &text).expect("write");
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        let response = serve(&dir, &Method::GET, "/app.css", &headers).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_ENCODING], "gzip");
        assert_eq!(response.headers()[header::CONTENT_TYPE], "text/css; charset=utf-8");
        let etag = response.headers()[header::ETAG].clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
        assert!(body.len() < text.len() / 4);
        let mut unzipped = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut unzipped).expect("gunzip");
        assert_eq!(unzipped, text);

        headers.insert(header::IF_NONE_MATCH, etag);
        assert_eq!(serve(&dir, &Method::GET, "/app.css", &headers).await.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(serve(&dir, &Method::GET, "/missing.css", &headers).await.status(), StatusCode::NOT_FOUND);
        assert_eq!(serve(&dir, &Method::GET, "/", &headers).await.status(), StatusCode::NOT_FOUND);
        std::fs::remove_dir_all(&dir).ok();
    }
}
