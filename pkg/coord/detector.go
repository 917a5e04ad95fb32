package coord

import (
	"sort"
	"time"
)

// Detector is the failure detector: a pure state machine fed with worker
// heartbeats and the current time. It owns no goroutine and reads no clock;
// the leader loop feeds it and commits what Expired reports. Not safe for
// concurrent use.
type Detector struct {
	timeout time.Duration
	grace   time.Duration
	// deadline is when each watched worker becomes overdue.
	deadline map[string]time.Time
}

// NewDetector returns a detector that declares a worker lost once no
// heartbeat arrived for timeout; workers first seen by Reset or Watch get
// an extra grace period on top.
func NewDetector(timeout, grace time.Duration) *Detector {
	return &Detector{timeout: timeout, grace: grace, deadline: map[string]time.Time{}}
}

// Reset forgets every clock and starts fresh ones, with the grace period,
// for ids. A new leader calls it so that no worker is declared dead merely
// because the leader has not heard from it yet.
func (d *Detector) Reset(now time.Time, ids []string) {
	d.deadline = make(map[string]time.Time, len(ids))
	for _, id := range ids {
		d.deadline[id] = now.Add(d.grace + d.timeout)
	}
}

// Watch starts a clock (with grace) for id unless one is running.
func (d *Detector) Watch(now time.Time, id string) {
	if _, ok := d.deadline[id]; !ok {
		d.deadline[id] = now.Add(d.grace + d.timeout)
	}
}

// Heartbeat records that id was heard from at now.
func (d *Detector) Heartbeat(now time.Time, id string) {
	dl := now.Add(d.timeout)
	if old, ok := d.deadline[id]; !ok || dl.After(old) {
		d.deadline[id] = dl
	}
}

// Suspect moves id's deadline forward to now+within unless it is already
// sooner: its session broke without a goodbye, so unless it reconnects
// (whose heartbeat pushes the deadline back out), it is lost within that
// window instead of after the full timeout.
func (d *Detector) Suspect(now time.Time, id string, within time.Duration) {
	dl := now.Add(within)
	if old, ok := d.deadline[id]; !ok || dl.Before(old) {
		d.deadline[id] = dl
	}
}

// Forget stops watching id (it was declared lost or left).
func (d *Detector) Forget(id string) { delete(d.deadline, id) }

// Watching reports whether id has a running clock.
func (d *Detector) Watching(id string) bool { _, ok := d.deadline[id]; return ok }

// Expired returns, sorted, the watched workers overdue at now. They stay
// watched until Forget.
func (d *Detector) Expired(now time.Time) []string {
	var out []string
	for id, dl := range d.deadline {
		if !now.Before(dl) {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}
