// franzcheck drives franz-go (github.com/twmb/franz-go, kgo and kadm) against
// a broker for tests/compat/test_franz_go.py: KIP-848 consumer groups
// (kgo.ServerSideBalancer) and share groups (kgo.ShareGroup). Each check
// prints one JSON line, {"check": NAME, "ok": true, "result": {...}} or
// {"check": NAME, "ok": false, "error": "..."}; the test asserts on it.
//
// Usage: franzcheck BOOTSTRAP PREFIX CHECK
//
//   - kip848: a 4-partition topic PREFIX-t with 10 records a partition; two
//     members of group PREFIX-g share it, then a leaves and b takes all 4
//     and reads 5 more a partition; b's commits are fetched with kadm and
//     the group described (ConsumerGroupDescribe) while both are in it.
//   - share: a one-partition topic PREFIX-q with 30 records (one batch
//     each; the test has set the group's share.auto.offset.reset to
//     earliest); two share consumers of group PREFIX-g release records whose
//     number ends in 3 on their first delivery, reject those ending in 7 and
//     accept the others, until every record but the rejected ones is
//     accepted.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

const deadline = 60 * time.Second

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: franzcheck BOOTSTRAP PREFIX CHECK")
		os.Exit(2)
	}
	bootstrap, prefix, check := os.Args[1], os.Args[2], os.Args[3]
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()
	var result map[string]any
	var err error
	switch check {
	case "kip848":
		result, err = kip848(ctx, strings.Split(bootstrap, ","), prefix)
	case "share":
		result, err = share(ctx, strings.Split(bootstrap, ","), prefix)
	default:
		err = fmt.Errorf("unknown check %q", check)
	}
	line := map[string]any{"check": check, "ok": err == nil}
	if err != nil {
		line["error"] = err.Error()
	} else {
		line["result"] = result
	}
	out, _ := json.Marshal(line)
	fmt.Println(string(out))
}

func produce(ctx context.Context, seeds []string, topic string, partitions, from, to int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0))
	if err != nil {
		return err
	}
	defer cl.Close()
	for p := 0; p < partitions; p++ {
		for i := from; i < to; i++ {
			r := &kgo.Record{Topic: topic, Partition: int32(p), Value: []byte(fmt.Sprintf("p%d-%d", p, i))}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				return err
			}
		}
	}
	return nil
}

// member is one KIP-848 group member: its client, the partitions it owns
// (from its rebalance callbacks) and what it read.
type member struct {
	cl    *kgo.Client
	mu    sync.Mutex
	owned map[int32]bool
	read  map[string]bool
}

func newMember(seeds []string, group, topic, id string) (*member, error) {
	m := &member{owned: map[int32]bool{}, read: map[string]bool{}}
	assigned := func(_ context.Context, _ *kgo.Client, ps map[string][]int32) {
		m.mu.Lock()
		defer m.mu.Unlock()
		for _, p := range ps[topic] {
			m.owned[p] = true
		}
	}
	gone := func(_ context.Context, _ *kgo.Client, ps map[string][]int32) {
		m.mu.Lock()
		defer m.mu.Unlock()
		for _, p := range ps[topic] {
			delete(m.owned, p)
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ClientID(id),
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.ServerSideBalancer(),
		kgo.Balancers(kgo.StickyBalancer()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(), kgo.OnPartitionsAssigned(assigned), kgo.OnPartitionsRevoked(gone),
		kgo.OnPartitionsLost(gone))
	if err != nil {
		return nil, err
	}
	m.cl = cl
	return m, nil
}

// poll reads what there is for a moment and commits it.
func (m *member) poll(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	fs := m.cl.PollFetches(pctx)
	m.mu.Lock()
	fs.EachRecord(func(r *kgo.Record) { m.read[string(r.Value)] = true })
	m.mu.Unlock()
	if fs.NumRecords() > 0 {
		_ = m.cl.CommitUncommittedOffsets(ctx)
	}
}

func (m *member) partitions() []int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []int32{}
	for p := range m.owned {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func until(ctx context.Context, what string, step func() bool) error {
	end := time.Now().Add(deadline)
	for !step() {
		if time.Now().After(end) || ctx.Err() != nil {
			return fmt.Errorf("timed out waiting for %s", what)
		}
	}
	return nil
}

func kip848(ctx context.Context, seeds []string, prefix string) (map[string]any, error) {
	topic, group := prefix+"-t", prefix+"-g"
	admCl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return nil, err
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	if _, err := adm.CreateTopic(ctx, 4, -1, nil, topic); err != nil {
		return nil, err
	}
	if err := produce(ctx, seeds, topic, 4, 0, 10); err != nil {
		return nil, err
	}
	a, err := newMember(seeds, group, topic, "franz-a")
	if err != nil {
		return nil, err
	}
	defer a.cl.Close()
	out := map[string]any{}
	if err := until(ctx, "a owns all 4", func() bool { a.poll(ctx); return len(a.partitions()) == 4 }); err != nil {
		return nil, err
	}
	b, err := newMember(seeds, group, topic, "franz-b")
	if err != nil {
		return nil, err
	}
	defer b.cl.Close()
	if err := until(ctx, "2 + 2", func() bool {
		a.poll(ctx)
		b.poll(ctx)
		return len(a.partitions()) == 2 && len(b.partitions()) == 2
	}); err != nil {
		return nil, err
	}
	out["a"], out["b"] = a.partitions(), b.partitions()
	described, err := adm.DescribeConsumerGroups(ctx, group)
	if err != nil {
		return nil, err
	}
	d := described[group]
	if d.Err != nil {
		return nil, d.Err
	}
	members := []map[string]any{}
	for _, m := range d.Members {
		ps := m.Assignment.Sorted()
		n := 0
		for _, t := range ps {
			n += len(t.Partitions)
		}
		members = append(members, map[string]any{"client_id": m.ClientID, "partitions": n, "type": m.MemberType})
	}
	sort.Slice(members, func(i, j int) bool { return members[i]["client_id"].(string) < members[j]["client_id"].(string) })
	out["described"] = map[string]any{"state": d.State, "assignor": d.AssignorName, "members": members}

	a.poll(ctx)
	a.cl.Close() // leaves the group
	if err := until(ctx, "b takes over", func() bool { b.poll(ctx); return len(b.partitions()) == 4 }); err != nil {
		return nil, err
	}
	if err := produce(ctx, seeds, topic, 4, 10, 15); err != nil {
		return nil, err
	}
	all := func() int {
		a.mu.Lock()
		b.mu.Lock()
		defer a.mu.Unlock()
		defer b.mu.Unlock()
		seen := map[string]bool{}
		for v := range a.read {
			seen[v] = true
		}
		for v := range b.read {
			seen[v] = true
		}
		return len(seen)
	}
	if err := until(ctx, "every record read", func() bool { b.poll(ctx); return all() == 60 }); err != nil {
		return nil, err
	}
	if err := b.cl.CommitUncommittedOffsets(ctx); err != nil {
		return nil, err
	}
	out["read"] = all()
	offsets, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return nil, err
	}
	committed := map[string]int64{}
	offsets.Each(func(o kadm.OffsetResponse) { committed[strconv.Itoa(int(o.Partition))] = o.At })
	out["committed"] = committed
	return out, nil
}

func share(ctx context.Context, seeds []string, prefix string) (map[string]any, error) {
	topic, group := prefix+"-q", prefix+"-g"
	admCl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return nil, err
	}
	defer admCl.Close()
	if _, err := kadm.NewClient(admCl).CreateTopic(ctx, 1, -1, nil, topic); err != nil {
		return nil, err
	}
	if err := produce(ctx, seeds, topic, 1, 0, 30); err != nil {
		return nil, err
	}
	type event struct {
		Who    string `json:"who"`
		N      int    `json:"n"`
		Count  int32  `json:"count"`
		Action string `json:"action"`
	}
	var events []event
	accepted := map[int]bool{}
	clients := map[string]*kgo.Client{}
	for _, who := range []string{"a", "b"} {
		cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ClientID("franz-share-"+who),
			kgo.ShareGroup(group), kgo.ConsumeTopics(topic), kgo.ShareMaxRecords(5))
		if err != nil {
			return nil, err
		}
		defer cl.Close()
		clients[who] = cl
	}
	wanted := 0
	for n := 0; n < 30; n++ {
		if n%10 != 7 {
			wanted++
		}
	}
	err = until(ctx, "every record but the rejected ones accepted", func() bool {
		for _, who := range []string{"a", "b"} {
			cl := clients[who]
			pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			fs := cl.PollFetches(pctx)
			cancel()
			fs.EachRecord(func(r *kgo.Record) {
				n, _ := strconv.Atoi(strings.TrimPrefix(string(r.Value), "p0-"))
				count := r.DeliveryCount()
				action := "accept"
				switch {
				case n%10 == 3 && count == 1:
					r.Ack(kgo.AckRelease)
					action = "release"
				case n%10 == 7:
					r.Ack(kgo.AckReject)
					action = "reject"
				default:
					r.Ack(kgo.AckAccept)
					accepted[n] = true
				}
				events = append(events, event{who, n, count, action})
			})
			if fs.NumRecords() > 0 {
				if err := cl.FlushAcks(ctx); err != nil {
					events = append(events, event{who, -1, 0, "flush error: " + err.Error()})
				}
			}
		}
		return len(accepted) == wanted
	})
	if err != nil {
		return nil, err
	}
	described, err := kadm.NewClient(admCl).DescribeShareGroups(ctx, group)
	if err != nil {
		return nil, err
	}
	return map[string]any{"events": events, "state": described[group].GroupState}, nil
}
