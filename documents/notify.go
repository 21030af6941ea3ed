package documents

import (
	"encoding/json"
	"sync"

	"github.com/google/uuid"
)

// EventChanged tells a session's participants that a document was
// uploaded, labelled or signed; it carries {"document_id"}. It names only
// the document: each client fetches what it may see through the API, so
// the event leaks nothing to those the document is hidden from.
const EventChanged = "documents_changed"

// Notifier pushes an event to a session's room (the signalling server
// implements it, as for sessions, acts and recording). The audience filter
// decides who receives it.
type Notifier interface {
	Notify(sessionID uuid.UUID, to []uuid.UUID, typ string, payload json.RawMessage)
}

// notifier holds the Notifier plugged in after the service is built (the
// signalling server needs the services first).
type notifier struct {
	mu sync.RWMutex
	n  Notifier
}

// SetNotifier plugs in where document events go; until then, nowhere.
func (s *Service) SetNotifier(n Notifier) {
	s.notifier.mu.Lock()
	defer s.notifier.mu.Unlock()
	s.notifier.n = n
}

// changed tells the session's room that a document changed.
func (s *Service) changed(sessionID, docID uuid.UUID) {
	s.notifier.mu.RLock()
	n := s.notifier.n
	s.notifier.mu.RUnlock()
	if n == nil {
		return
	}
	b, _ := json.Marshal(map[string]any{"document_id": docID}) // cannot fail
	n.Notify(sessionID, nil, EventChanged, b)
}
