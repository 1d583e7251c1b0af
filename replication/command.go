package replication

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// A command is what a raft log entry of type LogCommand carries: a list of ops that the state
// machine applies as one unit, all or none, at the entry's index. Its bytes:
//
//	version u8 (1) | class u8 | request ID [16] | count u32 | op ...
//	op: kind u8 | keyLen u32 | key [| valLen u32 | value]     (no value for a delete)
//
// All integers are big-endian. class is classUser (the keys a client writes: never one that
// begins with ReservedPrefix), classMeta (the cluster's own keys: only ones that begin with it,
// written by the node itself, such as the HTTP address of each member) or classBarrier (no
// ops: a read barrier). The request ID is the proposing node's (zero for none): when the state
// machine has applied the command it tells that node, which is how Node waits for a command
// without waiting on raft's future (see Node.submit).

// OpKind is what an op does.
type OpKind uint8

const (
	// OpSet sets the key to the value.
	OpSet OpKind = 1
	// OpDelete removes the key (an absent key is not an error).
	OpDelete OpKind = 2
	// OpAppend appends the value to the key's value (an absent key counts as empty). It is not
	// idempotent: applying one entry twice shows, which the replay test relies on.
	OpAppend OpKind = 3
)

func (k OpKind) String() string {
	switch k {
	case OpSet:
		return "set"
	case OpDelete:
		return "delete"
	case OpAppend:
		return "append"
	}
	return fmt.Sprintf("op(%d)", uint8(k))
}

// Op is one write of a command.
type Op struct {
	Kind  OpKind
	Key   []byte
	Value []byte // nil for OpDelete
}

// ReservedPrefix begins every key the state machine keeps for itself (the applied raft index,
// the members' HTTP addresses). Clients cannot write such keys, and scans leave them out.
const ReservedPrefix = "\x00"

// The state machine's own keys.
var (
	appliedKey = []byte(ReservedPrefix + "raft/applied") // 8 bytes: the last command index applied
	memberKey  = ReservedPrefix + "member/"              // + server ID: its HTTP address
)

const (
	cmdVersion   = 1
	classUser    = 0
	classMeta    = 1
	classBarrier = 2
	cmdHeader    = 1 + 1 + 16 + 4
)

// reqID identifies a command to the node that proposed it.
type reqID [16]byte

// MaxCommandBytes bounds a command's ops as the database logs them (each op's share of a
// record: kind, lengths, key and value; an append counts with the value it produces): the
// state machine refuses a command above it, and commits the commands of a batch in
// transactions of at most this size, well under the database's maximum record size.
const MaxCommandBytes = 32 << 20

// ErrCommandTooLarge is the outcome of a command whose ops exceed MaxCommandBytes.
var ErrCommandTooLarge = errors.New("replication: the command is larger than MaxCommandBytes")

// ErrReservedKey is the outcome of a client write to a key that begins with ReservedPrefix.
var ErrReservedKey = errors.New("replication: keys beginning with ReservedPrefix (0x00) are the state machine's own")

// command is a decoded command. Its keys and values alias the log entry's bytes.
type command struct {
	class uint8
	id    reqID
	ops   []Op
}

// EncodeCommand encodes a client's ops as a command (Node.Apply does it for you), with no
// request ID. It refuses a reserved key, an unknown kind, and ops above MaxCommandBytes.
func EncodeCommand(ops ...Op) ([]byte, error) { return encode(classUser, reqID{}, ops) }

// encodeMeta encodes a command on the state machine's own keys.
func encodeMeta(ops ...Op) ([]byte, error) { return encode(classMeta, reqID{}, ops) }

func encode(class uint8, id reqID, ops []Op) ([]byte, error) {
	if (len(ops) == 0) != (class == classBarrier) {
		return nil, errors.New("replication: a command has at least one op, a barrier none")
	}
	n := cmdHeader
	var logged int64
	for _, op := range ops {
		if err := checkOp(class, op); err != nil {
			return nil, err
		}
		n += 1 + 4 + len(op.Key)
		if op.Kind != OpDelete {
			n += 4 + len(op.Value)
		}
		logged += opBytes(op.Kind, len(op.Key), len(op.Value))
	}
	if logged > MaxCommandBytes {
		return nil, fmt.Errorf("%w (%d bytes of ops)", ErrCommandTooLarge, logged)
	}
	b := make([]byte, 0, n)
	b = append(b, cmdVersion, class)
	b = append(b, id[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(ops)))
	for _, op := range ops {
		b = append(b, byte(op.Kind))
		b = binary.BigEndian.AppendUint32(b, uint32(len(op.Key)))
		b = append(b, op.Key...)
		if op.Kind != OpDelete {
			b = binary.BigEndian.AppendUint32(b, uint32(len(op.Value)))
			b = append(b, op.Value...)
		}
	}
	return b, nil
}

// checkOp refuses an op that the class may not carry.
func checkOp(class uint8, op Op) error {
	switch op.Kind {
	case OpSet, OpDelete, OpAppend:
	default:
		return fmt.Errorf("replication: unknown op kind %d", uint8(op.Kind))
	}
	reserved := bytes.HasPrefix(op.Key, []byte(ReservedPrefix))
	switch {
	case class == classUser && reserved:
		return fmt.Errorf("%w: %q", ErrReservedKey, op.Key)
	case class == classMeta && !reserved:
		return fmt.Errorf("replication: a meta command writes only reserved keys, not %q", op.Key)
	case op.Kind == OpDelete && op.Value != nil:
		return errors.New("replication: a delete carries no value")
	}
	return nil
}

// opBytes is an op's share of the database's record: a set's or a delete's bytes there.
func opBytes(kind OpKind, klen, vlen int) int64 {
	if kind == OpDelete {
		return 1 + 4 + int64(klen)
	}
	return 1 + 4 + int64(klen) + 4 + int64(vlen)
}

// decodeCommand decodes a log entry's data. Every node decodes the same bytes the same way, so
// a malformed command is refused identically everywhere (it changes nothing).
func decodeCommand(b []byte) (command, error) {
	if len(b) < cmdHeader {
		return command{}, fmt.Errorf("replication: a command of %d bytes is shorter than its header", len(b))
	}
	if b[0] != cmdVersion {
		return command{}, fmt.Errorf("replication: command version %d (this build reads %d)", b[0], cmdVersion)
	}
	c := command{class: b[1], id: reqID(b[2:18])}
	if c.class != classUser && c.class != classMeta && c.class != classBarrier {
		return command{}, fmt.Errorf("replication: unknown command class %d", c.class)
	}
	count := binary.BigEndian.Uint32(b[18:])
	if (count == 0) != (c.class == classBarrier) || uint64(count) > uint64(len(b)) { // each op takes at least 5 bytes
		return command{}, fmt.Errorf("replication: a command of class %d and %d bytes cannot hold %d ops", c.class, len(b), count)
	}
	c.ops = make([]Op, 0, count)
	p := b[cmdHeader:]
	field := func() ([]byte, bool) {
		if len(p) < 4 {
			return nil, false
		}
		n := binary.BigEndian.Uint32(p)
		if uint64(n) > uint64(len(p)-4) {
			return nil, false
		}
		f := p[4 : 4+n : 4+n]
		p = p[4+n:]
		return f, true
	}
	for i := range count {
		if len(p) < 1 {
			return command{}, fmt.Errorf("replication: command ends before op %d", i)
		}
		op := Op{Kind: OpKind(p[0])}
		p = p[1:]
		var ok bool
		if op.Key, ok = field(); !ok {
			return command{}, fmt.Errorf("replication: op %d: key runs past the command", i)
		}
		if op.Kind != OpDelete {
			if op.Value, ok = field(); !ok {
				return command{}, fmt.Errorf("replication: op %d: value runs past the command", i)
			}
		}
		if err := checkOp(c.class, op); err != nil {
			return command{}, fmt.Errorf("op %d: %w", i, err)
		}
		c.ops = append(c.ops, op)
	}
	if len(p) != 0 {
		return command{}, fmt.Errorf("replication: %d bytes after the command's last op", len(p))
	}
	return c, nil
}
