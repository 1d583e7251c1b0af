package replication

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// The HTTP API on a one-node cluster: put, get (strong and stale), delete, scan with a prefix
// and a limit (reserved keys never shown), the refusals (a reserved key, a bad consistency),
// and status. Redirects to the leader are exercised by the process tests.
func TestHTTPAPI(t *testing.T) {
	_, tr := raft.NewInmemTransport("solo")
	srv := httptest.NewUnstartedServer(nil)
	n, err := StartNode(NodeConfig{ID: "solo", Dir: t.TempDir(), Transport: tr, HTTPAddr: srv.Listener.Addr().String(),
		Bootstrap: true, Raft: testRaftConfig(), FSM: FSMOptions{Parallelism: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown()
	srv.Config.Handler = NewHTTPHandler(n)
	srv.Start()
	defer srv.Close()
	eventually(t, 30*time.Second, "no leader", func() bool { return n.Raft().State() == raft.Leader })

	do := func(method, path, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, k := range []string{"a/1", "a/2", "a/3", "b", "with space"} {
		if code, body := do("PUT", "/kv/"+url.PathEscape(k), "v-"+k); code != http.StatusNoContent {
			t.Fatalf("PUT %s: %d %s", k, code, body)
		}
	}
	if code, body := do("GET", "/kv/a/2", ""); code != 200 || body != "v-a/2" {
		t.Fatalf("GET a/2: %d %q", code, body)
	}
	if code, body := do("GET", "/kv/with%20space?consistency=stale", ""); code != 200 || body != "v-with space" {
		t.Fatalf("GET with space: %d %q", code, body)
	}
	if code, _ := do("DELETE", "/kv/a/2", ""); code != http.StatusNoContent {
		t.Fatalf("DELETE: %d", code)
	}
	if code, _ := do("GET", "/kv/a/2", ""); code != http.StatusNotFound {
		t.Fatalf("GET a deleted key: %d", code)
	}
	code, body := do("GET", "/scan?prefix=a/", "")
	var kvs []jsonKV
	if code != 200 || json.Unmarshal([]byte(body), &kvs) != nil || len(kvs) != 2 || kvs[0].Key != "a/1" || kvs[1].Value != "v-a/3" {
		t.Fatalf("scan a/: %d %s", code, body)
	}
	code, body = do("GET", "/scan?limit=2&consistency=stale", "")
	if json.Unmarshal([]byte(body), &kvs) != nil || code != 200 || len(kvs) != 2 || kvs[0].Key != "a/1" {
		t.Fatalf("scan limit 2: %d %s", code, body)
	}
	code, body = do("GET", "/scan", "")
	if json.Unmarshal([]byte(body), &kvs) != nil || len(kvs) != 4 {
		t.Fatalf("scan all: %d %s (reserved keys must not show)", code, body)
	}
	if code, _ := do("PUT", "/kv/%00raft/applied", "x"); code != http.StatusBadRequest {
		t.Fatalf("PUT on a reserved key: %d", code)
	}
	if code, _ := do("GET", "/kv/b?consistency=eventual", ""); code != http.StatusBadRequest {
		t.Fatalf("GET with a bad consistency: %d", code)
	}
	// The register loop records the leader's HTTP address through raft once it leads.
	eventually(t, 30*time.Second, "the leader's HTTP address is not recorded", func() bool {
		_, _, h := n.Leader()
		return h == srv.Listener.Addr().String()
	})
	code, body = do("GET", "/status", "")
	var s Status
	if code != 200 || json.Unmarshal([]byte(body), &s) != nil || s.State != "Leader" || s.LeaderID != "solo" ||
		s.LeaderHTTP != srv.Listener.Addr().String() || len(s.Servers) != 1 || s.Servers[0].HTTP != s.LeaderHTTP || s.FSM.Applied == 0 {
		t.Fatalf("status: %d %s", code, body)
	}
	if code, body := do("POST", "/snapshot", ""); code != 200 || !strings.Contains(body, `"index"`) {
		t.Fatalf("snapshot: %d %s", code, body)
	}
}
