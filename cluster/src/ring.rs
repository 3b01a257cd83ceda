//! The vnode ring (being written; see issue 5).
