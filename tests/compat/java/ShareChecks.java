import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ExecutionException;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ListShareGroupOffsetsSpec;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.ShareGroupDescription;
import org.apache.kafka.clients.admin.ShareMemberDescription;
import org.apache.kafka.clients.admin.SharePartitionOffsetInfo;
import org.apache.kafka.clients.consumer.AcknowledgeType;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaShareConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.GroupIdNotFoundException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Share groups (KIP-932) with the Java client's KafkaShareConsumer, explicit
 * acknowledgement mode. Run as `ShareChecks BOOTSTRAP PREFIX CHECK`; each
 * check prints one JSON line (ClientChecks.Json), asserted in
 * test_share_groups.py. The same checks run against Runnel and Kafka.
 *
 * - queue: two consumers of one group on a one-partition topic; records
 *   whose number ends in 3 are RELEASEd on their first delivery, in 7
 *   REJECTed, the others ACCEPTed; then consumer a takes records and closes
 *   without acknowledging them, and b gets them.
 * - hold: produces 10 records, polls once until it holds some, prints them
 *   and waits to be killed (SIGKILL from the test).
 * - drain: accepts the 10 records of `hold`'s group.
 * - limit: 12 records in one batch; consumer a (`share.acquire.mode=
 *   record_limit`, `max.poll.records=5`) takes some and holds them, then
 *   consumer b (the same settings) accepts what it gets until it has 7
 *   records (or a minute passed).
 * - renew: 5 records; a takes them and, for 25 s, renews their locks
 *   (acknowledge RENEW) every 4 s while b polls; then a accepts them.
 *   The group's lock duration is 15 s.
 */
public class ShareChecks {
    static final Duration POLL = Duration.ofMillis(200);
    static final long DEADLINE_MS = 60_000;

    final String bootstrap;
    final String prefix;

    ShareChecks(String bootstrap, String prefix) {
        this.bootstrap = bootstrap;
        this.prefix = prefix;
    }

    public static void main(String[] args) {
        ShareChecks c = new ShareChecks(args[0], args[1]);
        Map<String, Object> line = new LinkedHashMap<>();
        line.put("check", args[2]);
        try {
            line.put("result", c.run(args[2]));
            line.put("ok", true);
        } catch (Exception e) {
            line.put("ok", false);
            line.put("error", ClientChecks.describe(e));
        }
        System.out.println(ClientChecks.Json.write(line));
        System.out.flush();
        System.exit(0);
    }

    Map<String, Object> run(String check) throws Exception {
        switch (check) {
            case "queue": return queue();
            case "hold": return hold();
            case "drain": return drain();
            case "limit": return limit();
            case "renew": return renew();
            default: throw new IllegalArgumentException("unknown check " + check);
        }
    }

    String topic() { return prefix + "-q"; }
    String group() { return prefix + "-g"; }

    Admin admin() {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        return Admin.create(p);
    }

    KafkaShareConsumer<String, String> consumer(String clientId) {
        return consumer(clientId, Map.of());
    }

    KafkaShareConsumer<String, String> consumer(String clientId, Map<String, String> extra) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("group.id", group());
        p.put("client.id", clientId);
        p.put("share.acknowledgement.mode", "explicit");
        p.put("max.poll.records", "5");
        p.putAll(extra);
        KafkaShareConsumer<String, String> c =
            new KafkaShareConsumer<>(p, new StringDeserializer(), new StringDeserializer());
        c.subscribe(List.of(topic()));
        return c;
    }

    /** The topic (one partition), read from the earliest record by the group. */
    void setUp(Admin admin) throws Exception {
        // The broker's default replication factor (3 on the Kafka fixture).
        admin.createTopics(List.of(new NewTopic(topic(), Optional.of(1), Optional.empty()))).all().get();
        ConfigResource g = new ConfigResource(ConfigResource.Type.GROUP, group());
        admin.incrementalAlterConfigs(Map.of(g, List.of(new AlterConfigOp(
            new ConfigEntry("share.auto.offset.reset", "earliest"), AlterConfigOp.OpType.SET)))).all().get();
    }

    /** Records `from` until `to`, one batch each. */
    void produce(int from, int to) throws Exception {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.LINGER_MS_CONFIG, "0");
        try (KafkaProducer<String, String> prod =
                 new KafkaProducer<>(p, new StringSerializer(), new StringSerializer())) {
            for (int i = from; i < to; i++) {
                prod.send(new ProducerRecord<>(topic(), 0, null, "r" + i)).get();
            }
        }
    }

    /** Records `from` until `to`, all in one batch. */
    void produceBatch(int from, int to) throws Exception {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.LINGER_MS_CONFIG, "5000");
        try (KafkaProducer<String, String> prod =
                 new KafkaProducer<>(p, new StringSerializer(), new StringSerializer())) {
            for (int i = from; i < to; i++) {
                prod.send(new ProducerRecord<>(topic(), 0, null, "r" + i));
            }
            prod.flush();
        }
    }

    static int number(ConsumerRecord<String, String> r) {
        return Integer.parseInt(r.value().substring(1));
    }

    static Map<String, Object> event(String who, ConsumerRecord<String, String> r, String action) {
        Map<String, Object> e = new LinkedHashMap<>();
        e.put("who", who);
        e.put("n", number(r));
        e.put("offset", r.offset());
        e.put("count", r.deliveryCount().map(Short::intValue).orElse(-1));
        e.put("action", action);
        return e;
    }

    long startOffset(Admin admin) throws Exception {
        Map<TopicPartition, SharePartitionOffsetInfo> offs = admin
            .listShareGroupOffsets(Map.of(group(), new ListShareGroupOffsetsSpec()))
            .partitionsToOffsetInfo(group()).get();
        SharePartitionOffsetInfo info = offs.get(new TopicPartition(topic(), 0));
        return info == null ? -1 : info.startOffset();
    }

    static void check(boolean ok, String what) {
        if (!ok) throw new IllegalStateException("timed out: " + what);
    }

    Map<String, Object> queue() throws Exception {
        Map<String, Object> out = new LinkedHashMap<>();
        List<Object> events = new ArrayList<>();
        try (Admin admin = admin()) {
            setUp(admin);
            KafkaShareConsumer<String, String> a = consumer("share-a");
            KafkaShareConsumer<String, String> b = consumer("share-b");
            try {
                // Both members own partition 0 before anything is written.
                long deadline = System.currentTimeMillis() + DEADLINE_MS;
                boolean both = false;
                while (!both && System.currentTimeMillis() < deadline) {
                    a.poll(POLL);
                    b.poll(POLL);
                    ShareGroupDescription d;
                    try {
                        d = admin.describeShareGroups(List.of(group())).describedGroups().get(group()).get();
                    } catch (ExecutionException e) {
                        // Not there until the first heartbeat.
                        if (e.getCause() instanceof GroupIdNotFoundException) continue;
                        throw e;
                    }
                    both = d.members().size() == 2 && d.members().stream().allMatch(
                        m -> m.assignment().topicPartitions().contains(new TopicPartition(topic(), 0)));
                }
                check(both, "both members assigned");
                ShareGroupDescription d = admin.describeShareGroups(List.of(group()))
                    .describedGroups().get(group()).get();
                out.put("state", d.groupState().toString());
                List<Object> members = new ArrayList<>();
                for (ShareMemberDescription m : d.members()) {
                    Map<String, Object> mm = new LinkedHashMap<>();
                    mm.put("client_id", m.clientId());
                    mm.put("epoch", m.memberEpoch());
                    mm.put("partitions", m.assignment().topicPartitions().toString());
                    members.add(mm);
                }
                out.put("members", members);

                produce(0, 30);
                Set<Integer> accepted = new TreeSet<>();
                Set<Integer> wanted = new TreeSet<>();
                for (int i = 0; i < 30; i++) if (i % 10 != 7) wanted.add(i);
                deadline = System.currentTimeMillis() + DEADLINE_MS;
                while (!accepted.equals(wanted) && System.currentTimeMillis() < deadline) {
                    for (Map.Entry<String, KafkaShareConsumer<String, String>> e
                             : Map.of("a", a, "b", b).entrySet()) {
                        KafkaShareConsumer<String, String> c = e.getValue();
                        ConsumerRecords<String, String> recs = c.poll(POLL);
                        for (ConsumerRecord<String, String> r : recs) {
                            int n = number(r);
                            int count = r.deliveryCount().map(Short::intValue).orElse(-1);
                            String action;
                            if (n % 10 == 3 && count == 1) {
                                c.acknowledge(r, AcknowledgeType.RELEASE);
                                action = "release";
                            } else if (n % 10 == 7) {
                                c.acknowledge(r, AcknowledgeType.REJECT);
                                action = "reject";
                            } else {
                                c.acknowledge(r, AcknowledgeType.ACCEPT);
                                accepted.add(n);
                                action = "accept";
                            }
                            events.add(event(e.getKey(), r, action));
                        }
                        if (!recs.isEmpty()) c.commitSync();
                    }
                }
                check(accepted.equals(wanted), "every record but the rejected ones accepted: " + accepted);
                out.put("start_after_queue", startOffset(admin));

                // a takes records and closes without acknowledging them.
                produce(30, 40);
                List<Object> held = new ArrayList<>();
                deadline = System.currentTimeMillis() + DEADLINE_MS;
                while (held.isEmpty() && System.currentTimeMillis() < deadline) {
                    for (ConsumerRecord<String, String> r : a.poll(POLL)) {
                        held.add(number(r));
                        events.add(event("a", r, "held"));
                    }
                }
                check(!held.isEmpty(), "a holds records");
                out.put("held_by_a", held);
                a.close();
                a = null;
                Set<Integer> rest = new TreeSet<>();
                deadline = System.currentTimeMillis() + DEADLINE_MS;
                while (rest.size() < 10 && System.currentTimeMillis() < deadline) {
                    ConsumerRecords<String, String> recs = b.poll(POLL);
                    for (ConsumerRecord<String, String> r : recs) {
                        b.acknowledge(r, AcknowledgeType.ACCEPT);
                        rest.add(number(r));
                        events.add(event("b", r, "accept"));
                    }
                    if (!recs.isEmpty()) b.commitSync();
                }
                check(rest.size() == 10, "b accepts the last 10: " + rest);
                out.put("start_after_close", startOffset(admin));
            } finally {
                if (a != null) a.close();
                b.close();
            }
        }
        out.put("events", events);
        return out;
    }

    Map<String, Object> hold() throws Exception {
        Map<String, Object> out = new LinkedHashMap<>();
        try (Admin admin = admin()) {
            setUp(admin);
        }
        produce(0, 10);
        KafkaShareConsumer<String, String> c = consumer("share-hold");
        List<Object> held = new ArrayList<>();
        long deadline = System.currentTimeMillis() + DEADLINE_MS;
        while (held.isEmpty() && System.currentTimeMillis() < deadline) {
            for (ConsumerRecord<String, String> r : c.poll(POLL)) {
                held.add(number(r));
            }
        }
        check(!held.isEmpty(), "holding records");
        out.put("held", held);
        Map<String, Object> line = new LinkedHashMap<>();
        line.put("check", "hold");
        line.put("ok", true);
        line.put("result", out);
        System.out.println(ClientChecks.Json.write(line));
        System.out.flush();
        // Until the test kills this process.
        Thread.sleep(DEADLINE_MS * 2);
        throw new IllegalStateException("not killed");
    }

    Map<String, Object> drain() throws Exception {
        Map<String, Object> out = new LinkedHashMap<>();
        Map<String, Object> counts = new HashMap<>();
        try (KafkaShareConsumer<String, String> c = consumer("share-drain")) {
            long deadline = System.currentTimeMillis() + DEADLINE_MS;
            while (counts.size() < 10 && System.currentTimeMillis() < deadline) {
                ConsumerRecords<String, String> recs = c.poll(POLL);
                for (ConsumerRecord<String, String> r : recs) {
                    c.acknowledge(r, AcknowledgeType.ACCEPT);
                    counts.put(String.valueOf(number(r)), r.deliveryCount().map(Short::intValue).orElse(-1));
                }
                if (!recs.isEmpty()) c.commitSync();
            }
            check(counts.size() == 10, "drained 10: " + counts);
        }
        out.put("counts", counts);
        try (Admin admin = admin()) {
            out.put("start", startOffset(admin));
        }
        return out;
    }

    Map<String, Object> limit() throws Exception {
        Map<String, Object> out = new LinkedHashMap<>();
        try (Admin admin = admin()) {
            setUp(admin);
        }
        produceBatch(0, 12);
        Map<String, String> mode = Map.of("share.acquire.mode", "record_limit");
        List<Object> held = new ArrayList<>();
        List<Object> taken = new ArrayList<>();
        try (KafkaShareConsumer<String, String> a = consumer("share-limit-a", mode)) {
            long deadline = System.currentTimeMillis() + DEADLINE_MS;
            while (held.isEmpty() && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : a.poll(POLL)) {
                    held.add(number(r));
                }
            }
            try (KafkaShareConsumer<String, String> b = consumer("share-limit-b", mode)) {
                long until = System.currentTimeMillis() + DEADLINE_MS;
                while (taken.size() < 7 && System.currentTimeMillis() < until) {
                    ConsumerRecords<String, String> recs = b.poll(POLL);
                    for (ConsumerRecord<String, String> r : recs) {
                        b.acknowledge(r, AcknowledgeType.ACCEPT);
                        taken.add(List.of(number(r), r.deliveryCount().map(Short::intValue).orElse(-1)));
                    }
                    if (!recs.isEmpty()) b.commitSync();
                }
            }
        }
        out.put("held", held);
        out.put("taken", taken);
        return out;
    }

    Map<String, Object> renew() throws Exception {
        Map<String, Object> out = new LinkedHashMap<>();
        try (Admin admin = admin()) {
            setUp(admin);
            ConfigResource g = new ConfigResource(ConfigResource.Type.GROUP, group());
            admin.incrementalAlterConfigs(Map.of(g, List.of(new AlterConfigOp(
                new ConfigEntry("share.record.lock.duration.ms", "15000"), AlterConfigOp.OpType.SET)))).all().get();
        }
        produceBatch(0, 5);
        List<ConsumerRecord<String, String>> held = new ArrayList<>();
        List<Object> taken = new ArrayList<>();
        List<Object> renewErrors = new ArrayList<>();
        try (KafkaShareConsumer<String, String> a = consumer("share-renew-a");
             KafkaShareConsumer<String, String> b = consumer("share-renew-b")) {
            a.setAcknowledgementCommitCallback((offsets, e) -> {
                if (e != null) renewErrors.add(String.valueOf(e));
            });
            long deadline = System.currentTimeMillis() + DEADLINE_MS;
            while (held.size() < 5 && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : a.poll(POLL)) {
                    held.add(r);
                }
            }
            check(held.size() == 5, "a holds the 5 records: " + held.size());
            // Each record a's poll hands back (the held ones come back once
            // their renewal went through) is renewed again, for 25 s.
            List<Object> renewed = new ArrayList<>();
            int maxDelivery = 0;
            List<ConsumerRecord<String, String>> recs = new ArrayList<>(held);
            long until = System.currentTimeMillis() + 25_000;
            while (System.currentTimeMillis() < until) {
                for (ConsumerRecord<String, String> r : recs) {
                    a.acknowledge(r, AcknowledgeType.RENEW);
                    renewed.add(number(r));
                    maxDelivery = Math.max(maxDelivery, r.deliveryCount().map(Short::intValue).orElse(-1));
                }
                recs = new ArrayList<>();
                for (ConsumerRecord<String, String> r : a.poll(POLL)) recs.add(r);
                for (ConsumerRecord<String, String> r : b.poll(POLL)) {
                    b.acknowledge(r, AcknowledgeType.ACCEPT);
                    taken.add(number(r));
                }
                b.commitSync();
            }
            // Then a accepts each as it comes back.
            TreeSet<Integer> accepted = new TreeSet<>();
            long acceptBy = System.currentTimeMillis() + DEADLINE_MS;
            while (accepted.size() < 5 && System.currentTimeMillis() < acceptBy) {
                for (ConsumerRecord<String, String> r : recs) {
                    a.acknowledge(r, AcknowledgeType.ACCEPT);
                    accepted.add(number(r));
                }
                a.commitSync();
                recs = new ArrayList<>();
                for (ConsumerRecord<String, String> r : a.poll(POLL)) recs.add(r);
            }
            check(accepted.size() == 5, "a accepted the 5 records: " + accepted);
            out.put("renewed", new TreeSet<Object>(renewed).size());
            // Above 1: a lock ran out and the record was delivered again.
            out.put("max_delivery_count", maxDelivery);
        }
        List<Object> numbers = new ArrayList<>();
        for (ConsumerRecord<String, String> r : held) numbers.add(number(r));
        out.put("held", numbers);
        out.put("taken_by_b", taken);
        out.put("errors", renewErrors);
        try (Admin admin = admin()) {
            out.put("start", startOffset(admin));
        }
        return out;
    }
}
