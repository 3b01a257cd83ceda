//! The one command table: every family's rows, joined.
//!
//! Owns [`CommandTable`] and [`table`]. Each family file ends with `pub(crate) const COMMANDS:
//! &[CommandSpec]`; this module lists the families once ([`FAMILIES`]) and indexes their rows by
//! name, so lookup, `COMMAND`, `INFO commandstats` and the per-command counters all use the same
//! rows in the same order. It never runs a command.
//!
//! Lookup runs once per request, so it avoids hashing: names are grouped by length, and a name
//! of up to 16 bytes is lower-cased into one `u128` and compared with the few names of its
//! length as a single integer (a GET costs a few dozen instructions instead of a few hundred).

use std::sync::OnceLock;

use super::CommandSpec;

/// Every family's rows, in the order `COMMAND` lists them.
const FAMILIES: &[&[CommandSpec]] = &[
    super::connection::COMMANDS,
    super::server::COMMANDS,
    super::string::COMMANDS,
    super::keys::COMMANDS,
    super::expire::COMMANDS,
    super::ringkv::COMMANDS,
    super::cluster::COMMANDS,
];

/// The longest command name the lookup lowercases on the stack; no Redis command is longer.
const MAX_NAME_BYTES: usize = 32;

/// Names up to this long are compared as one packed integer ([`pack_lowercase`]); longer ones
/// byte by byte.
const PACKED_NAME_BYTES: usize = 16;

/// All commands, indexed by lower-case name.
#[derive(Debug)]
pub(crate) struct CommandTable {
    rows: Vec<&'static CommandSpec>,
    /// Entry `n`: the names `n` bytes long, packed when short enough, and their row indexes,
    /// in table order.
    by_len: Vec<Vec<NameEntry>>,
}

/// One name in [`CommandTable::by_len`].
#[derive(Debug)]
struct NameEntry {
    /// The lower-case name packed by [`pack_lowercase`]; 0 when it is longer than
    /// [`PACKED_NAME_BYTES`].
    packed: u128,
    name: &'static [u8],
    index: usize,
}

/// The table, built on first use.
pub(crate) fn table() -> &'static CommandTable {
    static TABLE: OnceLock<CommandTable> = OnceLock::new();
    TABLE.get_or_init(|| CommandTable::new(FAMILIES))
}

impl CommandTable {
    fn new(families: &[&'static [CommandSpec]]) -> Self {
        let rows: Vec<&'static CommandSpec> =
            families.iter().flat_map(|family| family.iter()).collect();
        let mut by_len: Vec<Vec<NameEntry>> = (0..=MAX_NAME_BYTES).map(|_| Vec::new()).collect();
        for (index, spec) in rows.iter().enumerate() {
            let name = spec.name.as_bytes();
            // Names longer than MAX_NAME_BYTES could never be looked up; the tests forbid them.
            if let Some(bucket) = by_len.get_mut(name.len()) {
                let packed = pack_lowercase(name).unwrap_or(0);
                bucket.push(NameEntry {
                    packed,
                    name,
                    index,
                });
            }
        }
        CommandTable { rows, by_len }
    }

    /// The row of the command called `name`, in any case, and its index.
    pub fn lookup(&self, name: &[u8]) -> Option<(usize, &'static CommandSpec)> {
        let bucket = self.by_len.get(name.len())?;
        let index = match pack_lowercase(name) {
            Some(packed) => bucket.iter().find(|entry| entry.packed == packed)?.index,
            None => {
                bucket
                    .iter()
                    .find(|entry| entry.name.eq_ignore_ascii_case(name))?
                    .index
            }
        };
        Some((index, self.rows[index]))
    }

    /// Every row, in table order.
    pub fn rows(&self) -> &[&'static CommandSpec] {
        &self.rows
    }

    /// The row at `index`.
    pub fn get(&self, index: usize) -> Option<&'static CommandSpec> {
        self.rows.get(index).copied()
    }

    /// Number of commands.
    pub fn len(&self) -> usize {
        self.rows.len()
    }
}

/// `name` lower-cased (ASCII letters only, as Redis's `strcasecmp` lookup) and packed into
/// an integer, little-endian, zero-padded; `None` when longer than [`PACKED_NAME_BYTES`]. Names
/// of equal length pack equal exactly when they are equal ignoring ASCII case.
fn pack_lowercase(name: &[u8]) -> Option<u128> {
    let mut word = [0u8; PACKED_NAME_BYTES];
    for (slot, byte) in word.get_mut(..name.len())?.iter_mut().zip(name) {
        *slot = byte.to_ascii_lowercase();
    }
    Some(u128::from_le_bytes(word))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn names_are_unique_lowercase_and_rows_are_sane() {
        let mut seen = HashSet::new();
        for spec in table().rows() {
            assert!(seen.insert(spec.name), "{} listed twice", spec.name);
            assert_eq!(spec.name, spec.name.to_ascii_lowercase());
            assert!(spec.name.len() <= MAX_NAME_BYTES);
            assert!(spec.arity != 0, "{} has arity 0", spec.name);
            assert!(!spec.summary.is_empty(), "{} has no summary", spec.name);
            if spec.first_key > 0 {
                assert!(spec.key_step > 0, "{} has keys but no step", spec.name);
            }
        }
    }

    #[test]
    fn lookup_ignores_case() {
        let (index, spec) = table().lookup(b"PiNg").expect("ping");
        assert_eq!(spec.name, "ping");
        assert_eq!(table().get(index).map(|s| s.name), Some("ping"));
        assert!(table().lookup(b"nosuchcommand").is_none());
        assert!(table().lookup(&[b'a'; 100]).is_none());
        assert!(table().lookup(b"").is_none());
        // Only ASCII letters fold: these differ from "get" in a non-letter bit.
        assert!(table().lookup(b"g\xc5t").is_none());
        assert!(table().lookup(b"GE\x14").is_none());
        assert!(table().lookup(b"get\0").is_none());
    }

    #[test]
    fn every_name_is_found_in_any_case() {
        for (index, spec) in table().rows().iter().enumerate() {
            let upper = spec.name.to_ascii_uppercase();
            let mixed: String = spec
                .name
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    if i % 2 == 0 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect();
            for name in [spec.name, upper.as_str(), mixed.as_str()] {
                let (found, row) = table().lookup(name.as_bytes()).expect(name);
                assert_eq!((found, row.name), (index, spec.name));
            }
        }
    }

    #[test]
    fn long_names_are_matched_without_packing() {
        let specs: &'static [CommandSpec] = Box::leak(Box::new([CommandSpec::new(
            crate::cmd::Family::Server,
            "server",
            "averyveryverylongname",
            1,
            &[],
            (0, 0, 0),
            "A name past the packed length.",
        )]));
        let table = CommandTable::new(&[specs]);
        assert_eq!(
            table.lookup(b"AVeryVeryVeryLongName").map(|(i, _)| i),
            Some(0)
        );
        assert!(table.lookup(b"averyveryverylongnamf").is_none());
    }
}
