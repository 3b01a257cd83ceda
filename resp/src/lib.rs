//! `ringkv-resp`: the Redis-protocol front end (request parser, replies, commands).
