//! The security-question texts, cached between logins for at most `MAX_AGE` (they change
//! rarely; a login then makes two portal calls instead of three). One JSON file, written
//! atomically (temporary file + rename) with mode 0600; anything unreadable, stale, or from
//! another portal URL is simply fetched again. The cache never decides a login: the portal
//! still checks the question id and the answer.

use super::Question;
use serde_json::{json, Value};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const MAX_AGE: Duration = Duration::from_secs(600);
const MAX_BYTES: u64 = 256 * 1024;

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The cached questions, if fresh and from this portal.
pub fn read(path: &Path, url: &str, now: SystemTime) -> Option<Vec<Question>> {
    use std::io::Read;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .ok()?;
    let mut text = String::new();
    f.take(MAX_BYTES).read_to_string(&mut text).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    if v.get("url")?.as_str()? != url {
        return None;
    }
    let fetched = v.get("fetched")?.as_u64()?;
    let now = secs(now);
    if fetched > now || now - fetched >= MAX_AGE.as_secs() {
        return None;
    }
    super::parse_questions(v.get("questions")?.clone())
        .ok()
        .filter(|q| !q.is_empty())
}

/// Stores the questions; failures are ignored (the next login fetches again).
pub fn write(path: &Path, url: &str, now: SystemTime, questions: &[Question]) {
    let list: Vec<Value> = questions
        .iter()
        .map(|q| json!({"id": q.id, "question": q.text, "displayOrder": q.display_order}))
        .collect();
    let text = json!({"url": url, "fetched": secs(now), "questions": list}).to_string();
    let Some(dir) = path.parent() else { return };
    let tmp = dir.join(format!(".questions.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let ok = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if ok.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_same_url_only() {
        let dir = std::env::temp_dir().join(format!("pam_portal-qcache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("questions.cache");
        let q = vec![Question {
            id: 7,
            text: "Pet?".into(),
            display_order: 1,
        }];
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        write(&path, "https://a/rest", t0, &q);
        assert_eq!(
            read(&path, "https://a/rest", t0 + Duration::from_secs(10)),
            Some(q.clone())
        );
        assert_eq!(read(&path, "https://b/rest", t0), None, "another portal");
        assert_eq!(read(&path, "https://a/rest", t0 + MAX_AGE), None, "stale");
        assert_eq!(
            read(&path, "https://a/rest", t0 - Duration::from_secs(5)),
            None,
            "from the future"
        );
        std::fs::write(&path, "{garbage").unwrap();
        assert_eq!(read(&path, "https://a/rest", t0), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
