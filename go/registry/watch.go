package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/levee-dev/levee/go"
)

// watchLoop holds the watch stream: it connects, reads until the stream ends, breaks or goes
// silent, and reconnects after a jittered exponential backoff, resuming with Last-Event-ID.
func (c *Client) watchLoop(ctx context.Context) {
	attempt := 0
	for ctx.Err() == nil {
		if c.watchOnce(ctx) {
			attempt = 0
		}
		if c.wait(ctx, waitReconnect, c.backoff(attempt)) != nil {
			return
		}
		attempt++
	}
}

// watchOnce opens one watch stream and reads it to its end. It reports whether the stream
// was opened.
func (c *Client) watchOnce(parent context.Context) bool {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	req, err := c.newRequest(ctx, http.MethodGet, "/v1/watch", nil)
	if err != nil {
		c.logWarn("registry watch request cannot be made", "error", err)
		return false
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	if id := c.lastID.Load(); id != 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatUint(id, 10))
	}
	// RequestTimeout bounds the wait for the response head only; the stream then lasts until
	// either side ends it.
	headTimer := time.AfterFunc(c.cfg.RequestTimeout, cancel)
	resp, err := c.http.Do(req)
	headTimer.Stop()
	if err != nil {
		if parent.Err() == nil {
			c.logDebug("registry watch unavailable", "error", err)
		}
		return false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		err := statusError(resp.StatusCode, body)
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			c.logWarn("registry refused the watch: check the token", "error", err)
		} else {
			c.logDebug("registry watch unavailable", "error", err)
		}
		return false
	}

	// A registry whose backend is still down says so right after the first events.
	c.degraded.Store(false)
	c.streaming.Store(true)
	c.touch()
	c.refreshGauges()
	defer func() {
		c.touch()
		c.streaming.Store(false)
		c.refreshGauges()
	}()

	// The idle watchdog: a stream silent for IdleTimeout is cut (and reconnected).
	var heard atomic.Int64
	heard.Store(int64(c.clock.Now()))
	stopIdle := c.watchIdle(ctx, &heard, cancel)
	defer stopIdle()

	var parser sseParser
	buf := make([]byte, 32<<10)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			heard.Store(int64(c.clock.Now()))
			items, perr := parser.feed(buf[:n])
			for _, item := range items {
				if err := c.handle(item); err != nil {
					// Resume from a fresh snapshot rather than replay what could not be read.
					c.lastID.Store(0)
					c.logWarn("registry watch event unreadable; reconnecting for a snapshot", "error", err)
					return true
				}
			}
			if perr != nil {
				c.lastID.Store(0)
				c.logWarn("registry watch stream unreadable; reconnecting", "error", perr)
				return true
			}
		}
		if rerr != nil {
			if !errors.Is(rerr, io.EOF) && parent.Err() == nil {
				c.logDebug("registry watch stream broke", "error", rerr)
			}
			return true
		}
	}
}

// watchIdle cuts the stream (cancel) once nothing was heard for IdleTimeout, on the client's
// clock. It returns a function that stops it.
func (c *Client) watchIdle(ctx context.Context, heard *atomic.Int64, cancel func()) (stop func()) {
	var stopped atomic.Bool
	var current atomic.Pointer[func() bool]
	var arm func(d time.Duration)
	arm = func(d time.Duration) {
		s := levee.AfterFunc(c.clock, d, func() {
			if stopped.Load() || ctx.Err() != nil {
				return
			}
			silent := c.clock.Now().Since(levee.Timestamp(heard.Load()))
			if silent >= c.cfg.IdleTimeout {
				c.logDebug("registry watch stream went silent; reconnecting", "silent", silent)
				cancel()
				return
			}
			arm(c.cfg.IdleTimeout - silent)
		})
		current.Store(&s)
		if stopped.Load() {
			s()
		}
	}
	arm(c.cfg.IdleTimeout)
	return func() {
		stopped.Store(true)
		if s := current.Load(); s != nil {
			(*s)()
		}
	}
}

// handle applies one item of the stream.
func (c *Client) handle(item sseItem) error {
	if item.comment {
		c.touch()
		return nil
	}
	id, err := strconv.ParseUint(item.id, 10, 64)
	if !item.hasID || err != nil {
		return fmt.Errorf("event %q has no numeric id (%q)", item.event, item.id)
	}
	var d eventData
	if err := json.Unmarshal([]byte(item.data), &d); err != nil {
		return fmt.Errorf("event %d (%s): %w", id, item.event, err)
	}
	if d.Type == "" {
		d.Type = item.event
	}
	switch d.Type {
	case "status":
		if d.BackendConnected != nil {
			c.setDegraded(!*d.BackendConnected)
		}
	case "snapshot":
		c.setDegraded(d.Degraded)
	}
	c.touch()
	c.state.Store(c.apply(c.state.Load(), id, &d))
	c.lastID.Store(id)
	c.refreshGauges()
	c.notifyChange()
	return nil
}
