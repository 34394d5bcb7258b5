package main

import (
	"context"
	"fmt"
	"time"
)

// row is what the four schemas hold about one order.
type row struct {
	state                 string
	underReview, returned int
	early                 int // RETURNED transitions before the order's deadline
	session               string
	passed                int
	deadline              string
	messages, sent        int
}

const checkSQL = `SELECT o.order_id, o.state,
  (SELECT count(*) FROM filing.order_history h WHERE h.order_id = o.order_id AND h.to_state = 'UNDER_REVIEW'),
  (SELECT count(*) FROM filing.order_history h WHERE h.order_id = o.order_id AND h.to_state = 'RETURNED'),
  (SELECT count(*) FROM filing.order_history h WHERE h.order_id = o.order_id AND h.to_state = 'RETURNED' AND h.at < o.deadline_at),
  coalesce((SELECT s.state FROM verification.sessions s WHERE s.order_id = o.order_id AND s.submission = o.submission), ''),
  (SELECT count(*) FROM verification.challenges c JOIN verification.sessions s ON s.id = c.session_id
     WHERE s.order_id = o.order_id AND c.state = 'PASSED'),
  coalesce((SELECT d.state FROM deadline.deadlines d WHERE d.order_id = o.order_id AND d.submission = o.submission), ''),
  (SELECT count(*) FROM sms_dispatch.messages m WHERE m.order_id = o.order_id),
  (SELECT count(*) FROM sms_dispatch.messages m WHERE m.order_id = o.order_id AND m.state = 'SENT')
FROM filing.orders o WHERE o.order_id = ANY($1)`

// verdict counts lost and duplicated orders; expire selects the expiry drill's expectations.
type verdict struct {
	lost, dup int
	ackedLost int // orders with an acknowledged create, submit or check that the database does not hold
	notes     []string
}

func (e *env) check(ctx context.Context, d *driver, expire bool) (verdict, error) {
	var v verdict
	orders := d.orderList()
	ids := make([]string, 0, len(orders))
	for _, o := range orders {
		ids = append(ids, o.id)
	}
	rows, err := e.db.Query(ctx, checkSQL, ids)
	if err != nil {
		return v, err
	}
	got := map[string]row{}
	for rows.Next() {
		var id string
		var r row
		if err := rows.Scan(&id, &r.state, &r.underReview, &r.returned, &r.early, &r.session, &r.passed, &r.deadline, &r.messages, &r.sent); err != nil {
			rows.Close()
			return v, err
		}
		got[id] = r
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return v, err
	}
	note := func(format string, args ...any) {
		if len(v.notes) < 12 {
			v.notes = append(v.notes, fmt.Sprintf(format, args...))
		}
	}
	for _, o := range orders {
		r, ok := got[o.id]
		// duplicates, whatever the order's fate
		dup := r.underReview > 1 || r.returned > 1 || r.early > 0 || r.messages > 2
		if !expire && r.deadline == "FIRED" {
			dup = true
		}
		for _, ph := range o.phones {
			mids := d.sink.MessageIDs(ph)
			if len(mids) > 1 {
				dup = true
			}
			for _, m := range mids {
				if len(d.sink.Codes(m)) > 1 {
					dup = true
				}
			}
		}
		if dup {
			v.dup++
			note("duplicated %s: %+v phones %v/%v", o.id, r, d.sink.MessageIDs(o.phones[0]), d.sink.MessageIDs(o.phones[1]))
		}
		d.mu.Lock()
		submitted, verified := o.submitted, o.verified
		d.mu.Unlock()
		if !ok || (submitted && r.state == "DRAFT") || verified > r.passed {
			v.ackedLost++
			note("acknowledged but lost %s (submitted=%v verified=%d): %+v", o.id, submitted, verified, r)
		}
		if o.abandoned && !d.retry {
			continue // the client gave up on it (SIGTERM drill): its failed RPC is counted instead
		}
		var lost bool
		if expire {
			lost = !ok || r.state != "RETURNED" || r.session != "TIMED_OUT" || r.deadline != "FIRED" || r.returned == 0
		} else {
			lost = !ok || r.state != "UNDER_REVIEW" || r.session != "PASSED" || r.passed != 2 || r.deadline != "CANCELLED" || r.sent != 2
			for _, ph := range o.phones {
				if _, has := d.sink.Code(ph); !has {
					lost = true
				}
			}
		}
		if lost {
			v.lost++
			note("lost %s (abandoned=%v): %+v", o.id, o.abandoned, r)
		}
	}
	return v, nil
}

// converge re-checks until nothing is lost or limit passes, and returns the last verdict.
func (e *env) converge(d *driver, expire bool, limit time.Duration) (verdict, error) {
	ctx := context.Background()
	end := time.Now().Add(limit)
	for i := 0; ; i++ {
		// orders whose code came later than the driver waited: verify them once it arrives
		for _, o := range d.orderList() {
			d.mu.Lock()
			late := o.noCode
			d.mu.Unlock()
			if late {
				if _, ok0 := d.sink.Code(o.phones[0]); ok0 {
					if _, ok1 := d.sink.Code(o.phones[1]); ok1 {
						d.mu.Lock()
						o.noCode = false
						d.lateCodes++
						d.lateAt = time.Now()
						d.mu.Unlock()
						if err := d.verifyAll(ctx, o); err != nil {
							o.abandoned = true
						}
					}
				}
			}
		}
		v, err := e.check(ctx, d, expire)
		if err != nil {
			if time.Now().Before(end) {
				logf("check: %v; again", err)
				time.Sleep(time.Second)
				continue
			}
			return v, err
		}
		if i%10 == 0 && v.lost > 0 {
			logf("converging: %d not yet at their end state, e.g. %v", v.lost, v.notes[:min(3, len(v.notes))])
		}
		if v.lost == 0 || time.Now().After(end) {
			return v, nil
		}
		time.Sleep(500 * time.Millisecond)
	}
}
