//! Gossip membership over chitchat (being written; see issue 5).
