package replication

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/hashicorp/raft"
)

// MaxValueBytes bounds a PUT's body.
const MaxValueBytes = 16 << 20

// NewHTTPHandler is the node's client API:
//
//	PUT    /kv/KEY            body: the value         204 once committed
//	GET    /kv/KEY            200 with the value, 404  (?consistency=stale: this node's state)
//	DELETE /kv/KEY            204 once committed
//	GET    /scan?prefix=P&limit=N[&consistency=stale]  JSON [{"key":..,"value":..}]
//	POST   /join              JSON {"id","raft_addr","http_addr"}: add a voter
//	GET    /status            JSON Status: who leads, indexes, members
//	POST   /snapshot          take a raft snapshot on this node now
//
// KEY is the rest of the path, URL-unescaped. Writes, strong reads and joins go to the leader:
// any other node answers 307 Temporary Redirect to the leader's HTTP address (curl -L follows
// it, method and body kept), or 503 while it knows of no leader. Scan's JSON carries keys and
// values as strings (bytes that are not UTF-8 show as U+FFFD).
func NewHTTPHandler(n *Node) http.Handler {
	h := &httpAPI{n: n}
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /kv/{key...}", h.put)
	mux.HandleFunc("GET /kv/{key...}", h.get)
	mux.HandleFunc("DELETE /kv/{key...}", h.del)
	mux.HandleFunc("GET /scan", h.scan)
	mux.HandleFunc("POST /join", h.join)
	mux.HandleFunc("GET /status", h.status)
	mux.HandleFunc("POST /snapshot", h.snapshot)
	return mux
}

type httpAPI struct{ n *Node }

func (h *httpAPI) put(w http.ResponseWriter, r *http.Request) {
	v, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxValueBytes))
	if err != nil {
		http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	h.write(w, r, h.n.Put([]byte(r.PathValue("key")), v))
}

func (h *httpAPI) del(w http.ResponseWriter, r *http.Request) {
	h.write(w, r, h.n.Delete([]byte(r.PathValue("key"))))
}

func (h *httpAPI) write(w http.ResponseWriter, r *http.Request, err error) {
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func consistency(r *http.Request) (Consistency, error) {
	switch r.URL.Query().Get("consistency") {
	case "", "strong":
		return Strong, nil
	case "stale":
		return Stale, nil
	}
	return 0, fmt.Errorf("consistency must be strong or stale, not %q", r.URL.Query().Get("consistency"))
}

func (h *httpAPI) get(w http.ResponseWriter, r *http.Request) {
	c, err := consistency(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	v, ok, err := h.n.Get([]byte(r.PathValue("key")), c)
	switch {
	case err != nil:
		h.fail(w, r, err)
	case !ok:
		http.Error(w, "not found", http.StatusNotFound)
	default:
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(v)
	}
}

type jsonKV struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

func (h *httpAPI) scan(w http.ResponseWriter, r *http.Request) {
	c, err := consistency(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	limit := 0
	if s := r.URL.Query().Get("limit"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit < 0 {
			http.Error(w, "limit must be a number >= 0", http.StatusBadRequest)
			return
		}
	}
	kvs, err := h.n.Scan([]byte(r.URL.Query().Get("prefix")), limit, c)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := make([]jsonKV, len(kvs))
	for i, kv := range kvs {
		out[i] = jsonKV{string(kv.Key), string(kv.Value)}
	}
	writeJSON(w, out)
}

// JoinRequest is POST /join's body.
type JoinRequest struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
}

func (h *httpAPI) join(w http.ResponseWriter, r *http.Request) {
	var req JoinRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil {
		http.Error(w, "join: "+err.Error(), http.StatusBadRequest)
		return
	}
	h.write(w, r, h.n.Join(req.ID, req.RaftAddr, req.HTTPAddr))
}

func (h *httpAPI) status(w http.ResponseWriter, r *http.Request) { writeJSON(w, h.n.Status()) }

func (h *httpAPI) snapshot(w http.ResponseWriter, r *http.Request) {
	f := h.n.raft.Snapshot()
	if err := f.Error(); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	meta, rc, err := f.Open()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	rc.Close()
	writeJSON(w, map[string]any{"id": meta.ID, "index": meta.Index, "term": meta.Term, "size": meta.Size})
}

// fail answers an error: a redirect to the leader for ErrNotLeader, 503 when there is none.
func (h *httpAPI) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, raft.ErrNotLeader):
		_, _, addr := h.n.Leader()
		if addr == "" {
			http.Error(w, "no leader known: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		u := url.URL{Scheme: "http", Host: addr, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
		http.Redirect(w, r, u.String(), http.StatusTemporaryRedirect)
	case errors.Is(err, ErrReservedKey), errors.Is(err, ErrCommandTooLarge):
		http.Error(w, err.Error(), http.StatusBadRequest)
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, ErrApplyTimeout), errors.Is(err, raft.ErrRaftShutdown),
		errors.Is(err, raft.ErrLeadershipTransferInProgress):
		// The write may or may not have been committed.
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
	default:
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
