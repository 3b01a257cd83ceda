//! The one command table: every family's rows, joined.
//!
//! Owns [`CommandTable`] and [`table`]. Each family file ends with `pub(crate) const COMMANDS:
//! &[CommandSpec]`; this module lists the families once ([`FAMILIES`]) and indexes their rows by
//! name, so lookup, `COMMAND`, `INFO commandstats` and the per-command counters all use the same
//! rows in the same order. It never runs a command.

use std::collections::HashMap;
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

/// All commands, indexed by lower-case name.
#[derive(Debug)]
pub(crate) struct CommandTable {
    rows: Vec<&'static CommandSpec>,
    by_name: HashMap<&'static [u8], usize>,
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
        let by_name = rows
            .iter()
            .enumerate()
            .map(|(index, spec)| (spec.name.as_bytes(), index))
            .collect();
        CommandTable { rows, by_name }
    }

    /// The row of the command called `name`, in any case, and its index.
    pub fn lookup(&self, name: &[u8]) -> Option<(usize, &'static CommandSpec)> {
        if name.len() > MAX_NAME_BYTES {
            return None;
        }
        let mut lower = [0u8; MAX_NAME_BYTES];
        let lower = &mut lower[..name.len()];
        lower.copy_from_slice(name);
        lower.make_ascii_lowercase();
        let index = *self.by_name.get(&*lower)?;
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
    }
}
