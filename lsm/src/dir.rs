//! Opening directory files: the lock that keeps two engines off one directory, file names, directory fsync.
