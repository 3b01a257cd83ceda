//! The node's identity: an id chosen once and kept in the data directory, so a restarted node
//! is the same node.
//!
//! Owns [`load_or_create`]. Must never change an id already stored: a configured id that
//! disagrees with the stored one is an error, not a rename.

use std::path::Path;

use crate::NodeError;

/// File in the data directory holding the node id.
pub const NODE_ID_FILE: &str = "NODE_ID";

/// The node id: the stored one, else `configured`, else a new random one; stored on first use.
///
/// # Errors
/// [`NodeError::Identity`] if the file cannot be read or written, or if `configured` differs
/// from the stored id.
pub fn load_or_create(data_dir: &Path, configured: Option<&str>) -> Result<String, NodeError> {
    let path = data_dir.join(NODE_ID_FILE);
    let io_err = |source| NodeError::Identity {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(stored) => {
            let stored = stored.trim().to_string();
            match configured {
                Some(id) if id != stored => Err(io_err(std::io::Error::other(format!(
                    "this data directory belongs to node '{stored}', not '{id}'"
                )))),
                _ => Ok(stored),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = configured.map_or_else(random_id, str::to_string);
            let tmp = data_dir.join(format!("{NODE_ID_FILE}.tmp"));
            std::fs::write(&tmp, format!("{id}\n")).map_err(io_err)?;
            std::fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(io_err)?;
            std::fs::rename(&tmp, &path).map_err(io_err)?;
            Ok(id)
        }
        Err(e) => Err(io_err(e)),
    }
}

/// 40 hex characters, like a Redis Cluster node id, from the std hasher's random keys mixed
/// with the time and process id.
fn random_id() -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::with_capacity(40);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    for round in 0..3u64 {
        let mut h = RandomState::new().build_hasher();
        h.write_u128(seed);
        h.write_u32(std::process::id());
        h.write_u64(round);
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out.truncate(40);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_created_once_and_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = load_or_create(dir.path(), None).expect("create");
        assert_eq!(first.len(), 40);
        assert_eq!(load_or_create(dir.path(), None).expect("load"), first);
        assert_eq!(
            load_or_create(dir.path(), Some(&first)).expect("same id"),
            first
        );
        assert!(load_or_create(dir.path(), Some("other")).is_err());
    }

    #[test]
    fn a_configured_id_is_stored() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            load_or_create(dir.path(), Some("node-a")).expect("create"),
            "node-a"
        );
        assert_eq!(load_or_create(dir.path(), None).expect("load"), "node-a");
    }
}
