//! Emptied header maps, kept on each thread for the next client request's head.
//!
//! A map that has held an answer's head is emptied and kept here, and the next head parsed
//! on the thread is read into the map kept last. Kept per connection instead (as before),
//! a map waits until that connection's next request, by which time a busy proxy has touched
//! every other connection's map and request in between, and it is cold in the caches when
//! the head is written into it. Taken last-in first-out, it is usually the map an answer
//! has just released, still in the cache.

use http::HeaderMap;
use std::cell::RefCell;

/// At most this many maps are kept on a thread: as many as the requests a busy thread has
/// in flight, about; beyond that, a map is dropped.
const KEPT: usize = 128;

thread_local! {
    static SPARE: RefCell<Vec<HeaderMap>> = const { RefCell::new(Vec::new()) };
}

/// An empty map to read a head into: the one kept last on this thread, or a new one.
pub fn take() -> HeaderMap {
    SPARE
        .with(|spare| spare.borrow_mut().pop())
        .unwrap_or_default()
}

/// Empties `map` and keeps it for a later head on this thread.
pub fn give(mut map: HeaderMap) {
    if map.capacity() == 0 {
        return;
    }
    map.clear();
    SPARE.with(|spare| {
        let mut spare = spare.borrow_mut();
        if spare.len() < KEPT {
            spare.push(map);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn the_map_given_last_is_taken_first_and_empty() {
        let mut first = HeaderMap::new();
        first.insert("x-first", HeaderValue::from_static("1"));
        let mut last = HeaderMap::with_capacity(64);
        last.insert("x-last", HeaderValue::from_static("1"));
        let capacity = last.capacity();
        give(first);
        give(last);
        let taken = take();
        assert!(taken.is_empty());
        assert_eq!(taken.capacity(), capacity, "the last map given");
        let taken = take();
        assert!(taken.is_empty() && taken.capacity() > 0);
        assert_eq!(take().capacity(), 0, "none left: a new map");
    }

    #[test]
    fn no_more_than_kept_are_kept() {
        for _ in 0..KEPT + 10 {
            give(HeaderMap::with_capacity(4));
        }
        let kept = std::iter::from_fn(|| Some(take()))
            .take_while(|map| map.capacity() > 0)
            .count();
        assert_eq!(kept, KEPT);
    }
}
