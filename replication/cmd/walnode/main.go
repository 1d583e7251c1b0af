// Command walnode runs one server of the replicated database: raft over TCP and the HTTP API
// of replication.NewHTTPHandler.
//
//	walnode --id n1 --dir data/n1 --raft 127.0.0.1:7001 --http 127.0.0.1:8001 --bootstrap
//	walnode --id n2 --dir data/n2 --raft 127.0.0.1:7002 --http 127.0.0.1:8002 --join 127.0.0.1:8001
//
// --bootstrap starts a new cluster with this node alone (ignored on a restart: the node has
// state); --join asks a running node (the leader, or any node: it redirects) to add this one,
// retrying until it is added (ignored on a restart too). Once running it prints one line,
//
//	walnode: id=n1 raft=127.0.0.1:7001 http=127.0.0.1:8001
//
// with the addresses it listens on (useful with port 0). SIGINT or SIGTERM shuts it down.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/streamwal/recovery/replication"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "walnode:", err)
		os.Exit(1)
	}
}

func run() error {
	id := flag.String("id", "", "server ID (stable across restarts)")
	dir := flag.String("dir", "", "data directory")
	raftAddr := flag.String("raft", "127.0.0.1:7001", "raft address to listen on and advertise (host:port)")
	httpAddr := flag.String("http", "127.0.0.1:8001", "HTTP address to listen on (host:port)")
	bootstrap := flag.Bool("bootstrap", false, "start a new cluster with this node (ignored when the node has state)")
	join := flag.String("join", "", "HTTP address (host:port) of a cluster node to join (ignored when the node has state)")
	snapThreshold := flag.Uint64("snapshot-threshold", 8192, "raft log entries between snapshots")
	snapInterval := flag.Duration("snapshot-interval", 30*time.Second, "how often raft checks whether to snapshot")
	trailing := flag.Uint64("trailing-logs", 10240, "raft log entries kept after a snapshot")
	level := flag.String("log-level", "info", "log level: trace, debug, info, warn, error")
	flag.Parse()
	if *id == "" || *dir == "" {
		return errors.New("--id and --dir are required")
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: *id, Level: hclog.LevelFromString(*level), Output: os.Stderr})

	ln, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		return err
	}
	defer ln.Close()
	trans, err := raft.NewTCPTransportWithLogger(*raftAddr, nil, 3, 10*time.Second, logger.Named("tcp"))
	if err != nil {
		return err
	}
	conf := raft.DefaultConfig()
	conf.SnapshotThreshold = *snapThreshold
	conf.SnapshotInterval = *snapInterval
	conf.TrailingLogs = *trailing
	hasState := fileExists(filepath.Join(*dir, "raft.db"))
	node, err := replication.StartNode(replication.NodeConfig{
		ID: *id, Dir: *dir, Transport: trans, HTTPAddr: ln.Addr().String(),
		Bootstrap: *bootstrap, Raft: conf, Logger: logger,
	})
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: replication.NewHTTPHandler(node), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Printf("walnode: id=%s raft=%s http=%s\n", *id, trans.LocalAddr(), ln.Addr())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *join != "" && !hasState {
		if err := joinCluster(ctx, *join, replication.JoinRequest{ID: *id, RaftAddr: string(trans.LocalAddr()), HTTPAddr: ln.Addr().String()}, logger); err != nil {
			logger.Error("join failed", "error", err)
		}
	}
	select {
	case <-ctx.Done():
	case err = <-served:
		logger.Error("HTTP server stopped", "error", err)
	}
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	return node.Shutdown()
}

// joinCluster posts the join request to addr until it succeeds (following redirects to the
// leader) or ctx ends, for at most two minutes.
func joinCluster(ctx context.Context, addr string, req replication.JoinRequest, logger hclog.Logger) error {
	body, _ := json.Marshal(req)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		r, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/join", bytes.NewReader(body))
		if err != nil {
			return err
		}
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		resp, err := http.DefaultClient.Do(r)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusNoContent {
				logger.Info("joined the cluster", "via", addr)
				return nil
			}
			err = fmt.Errorf("join: %s", resp.Status)
		}
		logger.Warn("join: retrying", "error", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
