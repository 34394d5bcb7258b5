package outbox

import (
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/icpverify/icpverify/pkg/seal"
)

// Rows are messages as the columns of outbox rows, in order: what EnqueueAll and QueueInsert write,
// and what a statement that inserts the rows itself (InsertIntoSQL) passes as arrays.
type Rows struct {
	Targets  []string
	Payloads [][]byte
	// Sensitive marks the payloads wiped when parked; KeyIDs names the key each payload is sealed
	// with, "" for one kept in the clear.
	Sensitive []bool
	KeyIDs    []string
}

// Encode marshals msgs into rows, sealing every sensitive payload with keys' active key, bound to
// its target (a sealed SendMessage payload copied into a row of another target does not open).
// With nil keys, sensitive payloads are kept in the clear: for a service whose sensitive payloads
// hold nothing its own tables do not (filing's phones and ID tails are in its orders).
func Encode(keys *seal.Keyring, msgs []Message) (Rows, error) {
	var r Rows
	_, err := r.Add(keys, msgs)
	return r, err
}

// Add appends msgs, encoded as Encode does, and reports how many rows it added.
func (r *Rows) Add(keys *seal.Keyring, msgs []Message) (int, error) {
	for _, m := range msgs {
		payload, err := proto.Marshal(m.Msg)
		if err != nil {
			return 0, fmt.Errorf("outbox: marshal %s: %w", m.Target, err)
		}
		kid := ""
		if m.Sensitive && keys != nil {
			if payload, err = keys.Seal(payload, sealAD(m.Target)); err != nil {
				return 0, fmt.Errorf("outbox: seal %s: %w", m.Target, err)
			}
			kid = keys.ActiveKeyID()
		}
		r.Targets, r.Payloads = append(r.Targets, m.Target), append(r.Payloads, payload)
		r.Sensitive, r.KeyIDs = append(r.Sensitive, m.Sensitive), append(r.KeyIDs, kid)
	}
	return len(msgs), nil
}

// args are insertRowsSQL's arguments.
func (r Rows) args(now time.Time) []any {
	return []any{now, r.Targets, r.Payloads, r.Sensitive, r.KeyIDs}
}

// sealAD binds a sealed payload to the target of its row.
func sealAD(target string) []byte { return []byte("icp.outbox\x00" + target) }

// open replaces a claimed row's stored payload by its plaintext. A payload that does not open is
// left out (Payload nil) with Unopened saying why, for the relay to decide what to do with the row.
func (x *Row) open(keys *seal.Keyring) {
	if x.KeyID == "" {
		return
	}
	if keys == nil {
		x.Payload, x.Unopened = nil, fmt.Errorf("%w (key id %q): this service has no seal keys", seal.ErrUnknownKey, x.KeyID)
		return
	}
	plain, err := keys.Open(x.Payload, sealAD(x.Target))
	if err != nil {
		x.Payload, x.Unopened = nil, err
		return
	}
	x.Payload = plain
}

// keyMissing tells whether a row could not be opened only because its key is not configured (a key
// retired too early): the row is kept for retries, to go out once the key is back.
func keyMissing(err error) bool { return errors.Is(err, seal.ErrUnknownKey) }
