//! The simulated in-process network (being written; see issue 5).
