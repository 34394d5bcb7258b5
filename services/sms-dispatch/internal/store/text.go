package store

import (
	"encoding/json"
	"fmt"

	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
)

// text is what sealed_text holds once opened: the message's body and params, which both carry the code.
type text struct {
	Body   string            `json:"body"`
	Params map[string]string `json:"params"`
}

// textAD binds a sealed text to its message: copied into another row, it does not open.
func textAD(messageID string) []byte { return []byte("icp.sms-dispatch.messages\x00" + messageID) }

// sealText seals m's body and params with the active key, returning them and the key's id.
func (s *Store) sealText(m domain.Message) ([]byte, string, error) {
	plain, err := json.Marshal(text{Body: m.Body, Params: m.Params})
	if err != nil {
		return nil, "", err
	}
	sealed, err := s.keys.Seal(plain, textAD(m.ID))
	if err != nil {
		return nil, "", fmt.Errorf("seal message text: %w", err)
	}
	return sealed, s.keys.ActiveKeyID(), nil
}

// openText fills m's body and params from its stored sealed text (none: a wiped text). A text that
// does not open (sealed with a key the keyring no longer holds, or changed) reads as none: the
// dispatcher fails such a message as one with nothing to send, which for this keyring it is.
func (s *Store) openText(m *domain.Message, sealed []byte) {
	m.Body, m.Params = "", map[string]string{}
	if sealed == nil {
		return
	}
	plain, err := s.keys.Open(sealed, textAD(m.ID))
	if err != nil {
		return
	}
	var t text
	if json.Unmarshal(plain, &t) != nil {
		return
	}
	m.Body = t.Body
	if t.Params != nil {
		m.Params = t.Params
	}
}
