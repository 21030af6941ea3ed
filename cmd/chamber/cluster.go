package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/api"
	"github.com/chamber-court/chamber/cluster"
	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/fault"
	"github.com/chamber-court/chamber/journal"
	"github.com/chamber-court/chamber/recording"
	"github.com/chamber-court/chamber/sessions"
	"github.com/chamber-court/chamber/signaling"
	"github.com/chamber-court/chamber/signaling/protocol"
)

// nodeConfig is the multi-node mode (docs/operations.md, "Several nodes"):
// off unless --node-id is given.
type nodeConfig struct {
	id, url, internalURL string
	capacity             int
	leaseTTL             time.Duration
	natIPs               string
	secretFile           string
	galleryThreshold     int
}

func (n *nodeConfig) register(c *command) {
	c.fs.StringVar(&n.id, "node-id", "", "this node's unique, stable name in a cluster of several nodes (PostgreSQL only); empty = a single node")
	c.fs.StringVar(&n.url, "node-url", "", "this node's own public URL (default --public-url)")
	c.fs.StringVar(&n.internalURL, "node-internal-url", "", "the URL other nodes reach this node at, for signalling they pass on (default --node-url)")
	c.fs.IntVar(&n.capacity, "node-capacity", cluster.DefaultCapacity, "media connections this node takes; placement prefers nodes with the most headroom")
	c.fs.DurationVar(&n.leaseTTL, "lease-ttl", cluster.DefaultLeaseTTL, "how long a room stays with a node that stopped renewing its lease (failover takes about this long)")
	c.fs.IntVar(&n.galleryThreshold, "gallery-node-threshold", 100, "gallery observers a room's home node serves itself; more are placed on other nodes, fed by one relay per room (0 = never)")
	c.fs.StringVar(&n.secretFile, "cluster-secret-file", "", "a file holding the secret (32 bytes or more) the nodes authenticate their requests to one another with; default: one generated into the database by the first node")
	c.fs.StringVar(&n.natIPs, "node-nat-ips", "", "each node's public media address, as node-id=IP,…; this node's becomes --nat-ip (one manifest for every pod)")
}

// natIP returns this node's entry of --node-nat-ips ("" when absent).
func (n nodeConfig) natIP() (string, error) {
	if n.natIPs == "" {
		return "", nil
	}
	for _, pair := range strings.Split(n.natIPs, ",") {
		id, ip, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok || net.ParseIP(ip) == nil {
			return "", usagef("chamber serve: --node-nat-ips: %q is not node-id=IP", pair)
		}
		if id == n.id {
			return ip, nil
		}
	}
	return "", usagef("chamber serve: --node-nat-ips names no address for node %q", n.id)
}

// secret reads --cluster-secret-file (nil when not given): its content,
// surrounding white space trimmed, is the secret.
func (n nodeConfig) secret() ([]byte, error) {
	if n.secretFile == "" {
		return nil, nil
	}
	b, err := os.ReadFile(n.secretFile)
	if err != nil {
		return nil, usagef("chamber serve: --cluster-secret-file: %v", err)
	}
	b = bytes.TrimSpace(b)
	if len(b) < cluster.MinSecretLen {
		return nil, usagef("chamber serve: --cluster-secret-file holds %d bytes; a cluster secret needs %d or more", len(b), cluster.MinSecretLen)
	}
	return b, nil
}

// clusterNode is this node's part in a cluster, wired to the signalling
// server and the session layer.
type clusterNode struct {
	*cluster.Cluster
	sig *signaling.Server
	svc *sessions.Service
	rec *recording.Controller
	db  *database.DB
	log *slog.Logger
	cpu cpuMeter
}

// startCluster joins the cluster when --node-id is set; nil otherwise. It
// refuses SQLite: one SQLite file cannot be shared by several nodes.
func startCluster(ctx context.Context, n nodeConfig, dsn, publicURL string, db *database.DB, jnl *journal.Journal,
	sig *signaling.Server, svc *sessions.Service, rec *recording.Controller, log *slog.Logger) (*clusterNode, error) {
	if n.id == "" {
		return nil, nil
	}
	if db.Engine != database.Postgres {
		return nil, usagef("chamber serve: --node-id needs PostgreSQL (--database postgres://…); SQLite serves a single node, without --node-id")
	}
	url := n.url
	if url == "" {
		url = publicURL
	}
	secret, err := n.secret()
	if err != nil {
		return nil, err
	}
	cn := &clusterNode{sig: sig, svc: svc, rec: rec, db: db, log: log}
	c, err := cluster.New(cluster.Config{Secret: secret,
		DB: db, DSN: dsn, NodeID: n.id, PublicURL: url, InternalURL: n.internalURL,
		MediaAddr: sig.MediaUDPAddr().String(), Capacity: n.capacity, LeaseTTL: n.leaseTTL,
		Heartbeat: n.leaseTTL * 3 / 10, Load: cn.load, Lost: cn.lost, Logger: log,
		// A room nobody is connected to here is given up, unless it is
		// being recorded: the recording's taps are here.
		Empty: func(id uuid.UUID) bool { return !sig.HasRoom(id) && !rec.State(id).Recording },
	})
	if err != nil {
		return nil, usagef("chamber serve: %v", err)
	}
	cn.Cluster = c
	if err := c.Register(ctx); err != nil {
		return nil, err
	}
	jnl.SetFence(c.Fence)
	c.OnEvent(cn.event)
	return cn, nil
}

func (cn *clusterNode) load() cluster.Load {
	rooms, conns := cn.sig.Load()
	return cluster.Load{CPU: cn.cpu.share(), Peers: conns, Rooms: rooms}
}

// lost ends the connections of a room this node no longer holds; their
// clients reconnect and reach the new home. The room's writes are still
// fenced while they end.
func (cn *clusterNode) lost(sessionID uuid.UUID) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cn.handOverRecording(ctx, sessionID)
	if err := cn.sig.CloseRoom(ctx, sessionID, protocol.ByeMoved); err != nil {
		cn.log.Warn("ending the connections of a lost room", "session", sessionID, "err", err)
	}
	cn.svc.Forget(sessionID)
}

// claimed rebuilds a room this node has just become the home of. A room
// taken over from a node that failed is journalled as such (room.moved; a
// release — drain, shutdown, an idle room — is not a failover, and nobody
// can cause one from outside), and a recording that was running on the
// previous home continues here as a new segment: the failed node's segment
// is stored from its spool when that node, or its disk, comes back; a
// handed-over one was stopped by its node.
func (cn *clusterNode) claimed(ctx context.Context, l cluster.Lease) error {
	if err := cn.svc.Rebuild(ctx, l.SessionID); err != nil {
		return err
	}
	if l.Previous != "" {
		if err := cn.svc.RecordMove(ctx, l.SessionID, l.NodeID, l.Previous, l.Token); err != nil {
			return err
		}
	}
	running, err := recordingRunning(ctx, cn.db, l.SessionID)
	if err != nil {
		return err
	}
	handedOver, err := takeRecordingHandover(ctx, cn.db, l.SessionID)
	if err != nil || !(running || handedOver) || cn.rec.State(l.SessionID).Recording {
		return err
	}
	if _, err := cn.rec.Start(ctx, l.SessionID, "node:"+l.NodeID); err != nil {
		return fmt.Errorf("continuing the recording of %s: %w", l.SessionID, err)
	}
	cn.log.Info("recording continues on this node as a new segment", "session", l.SessionID, "previous_node", l.Previous)
	return nil
}

// handOverRecording stops the recording of a room this node gives up,
// leaving word for the next home to continue it as a new segment. A
// recording whose stop cannot be journalled here (the room is another
// node's already) waits in the spool and is stored by the recovery loop.
func (cn *clusterNode) handOverRecording(ctx context.Context, sessionID uuid.UUID) {
	st := cn.rec.State(sessionID)
	if !st.Recording || st.RecordingID == nil {
		return
	}
	if _, err := cn.db.ExecContext(ctx, `
		INSERT INTO room_state (session_id, presenting, presenting_doc, recording_handover, updated_at) VALUES ($1, '', '', $2, $3)
		ON CONFLICT (session_id) DO UPDATE SET recording_handover = excluded.recording_handover, updated_at = excluded.updated_at`,
		sessionID.String(), st.RecordingID.String(), database.Micros(database.Now())); err != nil {
		cn.log.Error("leaving the recording for the next home", "session", sessionID, "err", err)
	}
	// The room's participants must not wait on a slow recorder: after
	// handoverWait the room moves on, and the segment's files, complete or
	// not, stay in the spool until this stop (or Recover) stores them.
	stopped := make(chan struct{})
	go func() { // ends when the recorder has stopped
		defer close(stopped)
		if _, err := cn.rec.Stop(context.WithoutCancel(ctx), sessionID, "node:"+cn.NodeID()); err != nil {
			cn.log.Error("stopping the recording of a room handed over", "session", sessionID, "err", err)
		}
	}()
	select {
	case <-stopped:
	case <-time.After(handoverWait):
		cn.log.Warn("the recording is still stopping; the room is handed over, its spool keeps the segment", "session", sessionID)
	}
}

// handoverWait bounds how long a node handing a room over waits for its
// recording to stop.
const handoverWait = 5 * time.Second

// takeRecordingHandover reports, once, whether the room's previous home
// stopped a recording when it handed the room over.
func takeRecordingHandover(ctx context.Context, db *database.DB, sessionID uuid.UUID) (bool, error) {
	res, err := db.ExecContext(ctx, `UPDATE room_state SET recording_handover = '' WHERE session_id = $1 AND recording_handover <> ''`,
		sessionID.String())
	if err != nil {
		return false, fmt.Errorf("recording handover of %s: %w", sessionID, err)
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// recordingRunning reports whether a session's latest recording has not
// stopped: it was running on the room's previous home.
func recordingRunning(ctx context.Context, db *database.DB, sessionID uuid.UUID) (bool, error) {
	var stopped sql.NullInt64
	err := db.QueryRowContext(ctx, `SELECT stopped_at FROM recordings WHERE session_id = $1 ORDER BY started_at DESC LIMIT 1`,
		sessionID.String()).Scan(&stopped)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("recording state of %s: %w", sessionID, err)
	}
	return !stopped.Valid, nil
}

// edgeParam carries the placement ticket of a redirected gallery observer.
const edgeParam = "edge"

// relayPath is where a room's home serves the relay connections of edge
// nodes (node-to-node only: signed, never proxied).
const relayPath = "/internal/v1/sessions/{id}/relay"

// relayHandler serves an edge node's relay connection, signed by that node,
// for a room this node is the home of.
func (cn *clusterNode) relayHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		node, err := cn.Authenticate(r)
		if err != nil {
			failHTTP(w, r, err)
			return
		}
		id, err := uuid.Parse(r.PathValue("id"))
		if err != nil || !cn.Holds(id) {
			failHTTP(w, r, fault.New(fault.Unavailable, "this node is not the room's home"))
			return
		}
		cn.sig.HandleSignal(w, r.WithContext(signaling.WithRelay(r.Context(), node)))
	})
}

// cascade is the cluster as the signalling server's cascade sees it. Its
// node is set once the cluster has started, before any request.
type cascade struct {
	cn *clusterNode

	mu sync.Mutex
	// placed counts, per room, the observers sent to each edge node. The
	// nodes' load reaches the database only with their heartbeat, so a
	// burst of joins would all go to the node that looked idlest: the
	// counts spread them.
	placed map[uuid.UUID]map[string]int
}

// maxPlacedRooms bounds the rooms whose placements are remembered.
const maxPlacedRooms = 4096

// Place puts one more gallery observer on another node — the one this
// node has sent the fewest of the room's observers, then the one with
// the most headroom: the URL to join there, with the signed placement.
func (c *cascade) Place(ctx context.Context, sessionID, participantID uuid.UUID) (string, error) {
	if c.cn == nil {
		return "", nil
	}
	ns, err := c.cn.EdgeCandidates(ctx)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	if c.placed == nil || len(c.placed) >= maxPlacedRooms {
		c.placed = map[uuid.UUID]map[string]int{}
	}
	room := c.placed[sessionID]
	if room == nil {
		room = map[string]int{}
		c.placed[sessionID] = room
	}
	n := ns[0]
	for _, x := range ns[1:] {
		if room[x.ID] < room[n.ID] {
			n = x
		}
	}
	room[n.ID]++
	c.mu.Unlock()
	ticket, err := c.cn.EdgeTicket(sessionID, participantID, n.ID)
	if err != nil {
		return "", err
	}
	return wsURL(n.PublicURL) + "/api/v1/sessions/" + sessionID.String() + "/signal?" + edgeParam + "=" + ticket, nil
}

// DialHome names the relay endpoint of the room's home and signs the
// request for it.
func (c *cascade) DialHome(ctx context.Context, sessionID uuid.UUID) (string, http.Header, error) {
	if c.cn == nil {
		return "", nil, fault.New(fault.Unavailable, "not in a cluster")
	}
	home, err := c.cn.Home(ctx, sessionID)
	if err != nil {
		return "", nil, err
	}
	if home.NodeID == c.cn.NodeID() {
		return "", nil, fault.New(fault.Conflict, "this node is the room's home")
	}
	n, err := c.cn.Node(ctx, home.NodeID)
	if err != nil {
		return "", nil, err
	}
	u := strings.TrimRight(n.InternalURL, "/") + strings.Replace(relayPath, "{id}", sessionID.String(), 1)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", nil, err
	}
	c.cn.Sign(req)
	return wsURL(u), req.Header, nil
}

// wsURL turns an http(s) URL into the ws(s) one of the same place.
func wsURL(u string) string {
	u = strings.TrimRight(u, "/")
	if rest, ok := strings.CutPrefix(u, "http"); ok {
		return "ws" + rest
	}
	return u
}

// signal serves a signalling request: a session that can be served is
// routed to its home (claimed here, or passed on); anything else goes
// straight to the signalling server, which refuses it — no lease, no
// journal entry for what nobody may join.
func (cn *clusterNode) signal(rt *cluster.Router) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := uuid.Parse(r.PathValue("id"))
		if err != nil || !cn.svc.Servable(r.Context(), id) {
			cn.sig.HandleSignal(w, r)
			return
		}
		if ticket := r.URL.Query().Get(edgeParam); ticket != "" {
			// A gallery observer the room's home placed here: served by
			// this node as the room's edge, whoever is home. Placed on
			// another node (a browser follows the redirect on its own
			// origin, and reaches whichever node its load balancer
			// picks), it is passed on there.
			participant, node, err := cn.EdgeTicketFor(ticket, id)
			if err != nil {
				failHTTP(w, r, err)
				return
			}
			if node != cn.NodeID() {
				rt.Forward(w, r, node)
				return
			}
			cn.sig.HandleSignal(w, r.WithContext(signaling.WithEdge(r.Context(), participant)))
			return
		}
		rt.ServeHTTP(w, r)
	}
}

// roomEvent is what a node tells a room's home: the session layer's
// Notify or Disconnect of a change it committed.
type roomEvent struct {
	Disconnect  bool            `json:"disconnect,omitempty"`
	To          []uuid.UUID     `json:"to,omitempty"`
	Type        string          `json:"type,omitempty"`
	Payload     json.RawMessage `json:"payload,omitempty"`
	Participant uuid.UUID       `json:"participant,omitzero"`
	Code        string          `json:"code,omitempty"`
	// Credential, with no session, ends a credential's connections on
	// every node (a sign-out, a revoked token or account).
	Credential string `json:"credential,omitempty"`
}

// event applies, on the room's home, a change another node committed:
// the live state is re-read first, so the media policy sees it, then the
// event goes to the connections here.
func (cn *clusterNode) event(ctx context.Context, sessionID uuid.UUID, body []byte) {
	var ev roomEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		cn.log.Error("malformed room event", "session", sessionID, "err", err)
		return
	}
	if sessionID == uuid.Nil {
		cn.sig.DisconnectCredential(ev.Credential, ev.Code)
		return
	}
	moved, err := cn.svc.Refresh(ctx, sessionID)
	if err != nil {
		cn.log.Warn("refreshing a room after another node's change", "session", sessionID, "err", err)
	}
	if ev.Disconnect {
		cn.sig.Disconnect(sessionID, ev.Participant, ev.Code)
	} else {
		cn.sig.Notify(sessionID, ev.To, ev.Type, ev.Payload)
	}
	if !ev.Disconnect && ev.Type == sessions.EventSessionClosed {
		// Closed through another node, which disconnected only those it
		// saw connected: every connection here ends — the edges' relays
		// too, and with them the edges' observers.
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := cn.sig.CloseRoom(cctx, sessionID, protocol.ByeSessionClosed); err != nil {
			cn.log.Warn("ending the connections of a session closed on another node", "session", sessionID, "err", err)
		}
		cancel()
	}
	cn.svc.CatchUp(ctx, sessionID, moved)
}

// notifier passes the session layer's events to the connections here, and
// to the room's home through the database when this node is not it.
type clusterNotifier struct {
	*signaling.Server
	cn *clusterNode
}

func (n clusterNotifier) Notify(sessionID uuid.UUID, to []uuid.UUID, typ string, payload json.RawMessage) {
	n.Server.Notify(sessionID, to, typ, payload)
	n.publish(sessionID, roomEvent{To: to, Type: typ, Payload: payload})
}

func (n clusterNotifier) Disconnect(sessionID, participantID uuid.UUID, code string) {
	n.Server.Disconnect(sessionID, participantID, code)
	n.publish(sessionID, roomEvent{Disconnect: true, Participant: participantID, Code: code})
}

// DisconnectCredential ends a credential's connections here and on every
// other node.
func (n clusterNotifier) DisconnectCredential(credential, code string) {
	n.Server.DisconnectCredential(credential, code)
	body, err := json.Marshal(roomEvent{Credential: credential, Code: code})
	if err == nil {
		err = n.cn.Publish(context.Background(), uuid.Nil, body)
	}
	if err != nil {
		n.cn.log.Error("telling the other nodes of an ended credential", "err", err)
	}
}

func (n clusterNotifier) publish(sessionID uuid.UUID, ev roomEvent) {
	if n.cn.Holds(sessionID) {
		return
	}
	if _, err := n.cn.Home(context.Background(), sessionID); err != nil {
		return // no home: nobody is connected anywhere
	}
	body, err := json.Marshal(ev)
	if err == nil {
		err = n.cn.Publish(context.Background(), sessionID, body)
	}
	if err != nil {
		n.cn.log.Warn("telling a room's home of a change", "session", sessionID, "err", err)
	}
}

// failHTTP answers a request the cluster could not route, as the API
// answers errors (api.StatusOf, Retry-After on 503).
func failHTTP(w http.ResponseWriter, _ *http.Request, err error) {
	code, message, fields := fault.Describe(err)
	status := api.StatusOf(err)
	if fault.KindOf(err) == fault.Internal {
		code, message, fields = fault.Internal.Code(), fault.Internal.Error(), nil
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", strconv.Itoa(1))
	}
	api.WriteJSON(w, status, api.ErrorBody{Error: api.ErrorDetail{Code: code, Message: message, Fields: fields}})
}

// homeOnly sends requests about a room to its home node when another node
// is that. A request another node passed on, with a valid signature, is
// served here, whatever this node believes: a room that moves meanwhile
// costs a stale answer, never a loop. One that only claims to come from a
// node is refused, as in signalling: a client must not choose to be
// answered (or have its close journalled) by a node that does not know
// the room's connections.
func (cn *clusterNode) homeOnly(next http.Handler) http.Handler {
	rt := cn.Router(next, cn.claimed, failHTTP)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(cluster.ProxiedHeader) != "" || r.Header.Get(cluster.NodeAuthHeader) != "" {
			if _, err := cn.Authenticate(r); err != nil {
				failHTTP(w, r, err)
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		id, err := uuid.Parse(r.PathValue("id"))
		if err != nil {
			next.ServeHTTP(w, r)
			return
		}
		home, err := cn.Home(r.Context(), id)
		if err != nil || home.NodeID == cn.NodeID() {
			next.ServeHTTP(w, r) // nobody connected anywhere, or here
			return
		}
		rt.Forward(w, r, home.NodeID)
	})
}

// drainHandler serves POST /drain on the metrics listener: the node takes
// no new rooms and hands those it holds over (a preStop hook calls it).
func (cn *clusterNode) drainHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cn.Drain(r.Context())
		api.WriteJSON(w, http.StatusOK, map[string]any{"node": cn.NodeID(), "draining": true, "rooms": cn.HeldRooms()})
	})
}

// ready fails while the node's leases are not renewed (its database is
// out of reach) or it drains, so a load balancer stops sending to it.
func (cn *clusterNode) ready(ctx context.Context) error {
	if cn.Draining() {
		return fault.New(fault.Unavailable, "draining")
	}
	if !cn.Renewing() {
		return fault.New(fault.Unavailable, "the node's heartbeat is not reaching the database")
	}
	return nil
}

// homeRoutes are the REST routes served by the room's home node, because
// only it knows the room's connections: a recording records the home's
// media; the participants' connected flags are the home's; a close
// journals whom it disconnected. Every other change goes through the
// database and reaches the home as an event.
var homeRoutes = []string{
	"POST /api/v1/sessions/{id}/recording",
	"GET /api/v1/sessions/{id}/participants",
	"POST /api/v1/sessions/{id}/close",
}

// front sends the homeRoutes to the room's home node.
func (cn *clusterNode) front(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	for _, route := range homeRoutes {
		mux.Handle(route, cn.homeOnly(h))
	}
	mux.Handle("GET "+relayPath, cn.relayHandler())
	mux.Handle("/", h)
	return mux
}

// readiness adds the node's lease heartbeat to the checks.
func readiness(cn *clusterNode, checks map[string]api.Check) map[string]api.Check {
	if cn != nil {
		checks["cluster"] = cn.ready
	}
	return checks
}

// runDrain asks a running node, on its metrics listener, to drain: it
// takes no new rooms and its rooms' participants reconnect to other nodes.
// Kubernetes runs it as the pod's preStop hook.
func runDrain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newCommand("drain")
	admin := c.fs.String("metrics-listen", defaultMetricsListen, "the node's --metrics-listen address, where POST /drain is served")
	if err := c.parse(args, stderr); err != nil {
		return err
	}
	addr := *admin
	if strings.HasPrefix(addr, ":") {
		addr = "127.0.0.1" + addr
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/drain", nil)
	if err != nil {
		return usagef("chamber drain: --metrics-listen %q: %v", *admin, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("chamber drain: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("chamber drain: %s: %s", resp.Status, body)
	}
	_, err = stdout.Write(body)
	return err
}
