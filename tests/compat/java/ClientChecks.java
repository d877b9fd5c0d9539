import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.ListOffsetsResult.ListOffsetsResultInfo;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Apache Kafka's own Java client (kafka-clients) against a broker: each
 * check drives one area of the client and prints what it observed as one
 * JSON line, {"check": NAME, "ok": true, "result": {...}}, or
 * {"check": NAME, "ok": false, "error": "..."} when the client threw.
 * tests/compat/test_kafka_java_client.py asserts on the results; this
 * program only fails on its own when a wait runs out.
 *
 * Usage: ClientChecks BOOTSTRAP NAME_PREFIX CHECK...
 * Checks: admin, idempotent, range, cooperative, static, transactions, records.
 * Every topic, group and transactional id starts with NAME_PREFIX.
 */
public final class ClientChecks {
    static final long WAIT_MS = 30_000;

    final String bootstrap;
    final String prefix;

    ClientChecks(String bootstrap, String prefix) {
        this.bootstrap = bootstrap;
        this.prefix = prefix;
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 3) {
            System.err.println("usage: ClientChecks BOOTSTRAP NAME_PREFIX CHECK...");
            System.exit(2);
        }
        ClientChecks c = new ClientChecks(args[0], args[1]);
        for (int i = 2; i < args.length; i++) {
            Map<String, Object> line = new LinkedHashMap<>();
            line.put("check", args[i]);
            try {
                Map<String, Object> result = c.run(args[i]);
                line.put("ok", true);
                line.put("result", result);
            } catch (Exception e) {
                line.put("ok", false);
                line.put("error", describe(e));
            }
            System.out.println(Json.write(line));
            System.out.flush();
        }
    }

    Map<String, Object> run(String check) throws Exception {
        switch (check) {
            case "admin": return adminCheck();
            case "idempotent": return idempotent();
            case "range": return eagerGroup("range", "org.apache.kafka.clients.consumer.RangeAssignor");
            case "cooperative": return cooperative();
            case "static": return staticMembership();
            case "transactions": return transactions();
            case "records": return records();
            default: throw new IllegalArgumentException("unknown check " + check);
        }
    }

    // ------------------------------------------------------------------
    // Admin: topics, configs, delete records, list offsets, cluster
    // ------------------------------------------------------------------

    Map<String, Object> adminCheck() throws Exception {
        Map<String, Object> out = new LinkedHashMap<>();
        String t = prefix + "-admin";
        String tc = prefix + "-admin-compact";
        try (Admin admin = admin()) {
            admin.createTopics(List.of(
                new NewTopic(t, 3, (short) 1).configs(Map.of("retention.ms", "3600000", "max.message.bytes", "200000")),
                new NewTopic(tc, 1, (short) 1).configs(Map.of("cleanup.policy", "compact"))
            )).all().get();
            out.put("create_again_error", errorName(() -> admin.createTopics(List.of(new NewTopic(t, 1, (short) 1))).all().get()));
            Set<String> names = admin.listTopics().names().get();
            out.put("listed", List.of(names.contains(t), names.contains(tc)));

            Map<String, TopicDescription> desc = admin.describeTopics(List.of(t, tc)).allTopicNames().get();
            Map<String, Object> topics = new LinkedHashMap<>();
            for (TopicDescription d : desc.values()) {
                List<Object> parts = new ArrayList<>();
                for (TopicPartitionInfo p : d.partitions()) {
                    parts.add(map("partition", p.partition(), "leader", p.leader() == null ? null : p.leader().id(),
                        "replicas", p.replicas().size(), "isr", p.isr().size()));
                }
                topics.put(d.name(), map("internal", d.isInternal(), "partitions", parts,
                    "topic_id_set", d.topicId() != null && !d.topicId().toString().equals("AAAAAAAAAAAAAAAAAAAAAA")));
            }
            out.put("describe_topics", topics);

            ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, t);
            out.put("configs_before", configs(admin, res, "retention.ms", "max.message.bytes", "cleanup.policy", "segment.bytes"));
            Map<String, Object> compact = configs(admin, new ConfigResource(ConfigResource.Type.TOPIC, tc), "cleanup.policy");
            out.put("configs_compact", compact);
            admin.incrementalAlterConfigs(Map.of(res, List.of(
                new AlterConfigOp(new ConfigEntry("retention.ms", "7200000"), AlterConfigOp.OpType.SET),
                new AlterConfigOp(new ConfigEntry("segment.bytes", "1048576"), AlterConfigOp.OpType.SET),
                new AlterConfigOp(new ConfigEntry("max.message.bytes", ""), AlterConfigOp.OpType.DELETE)
            ))).all().get();
            out.put("configs_after", configs(admin, res, "retention.ms", "max.message.bytes", "segment.bytes"));
            out.put("alter_invalid_error", errorName(() -> admin.incrementalAlterConfigs(Map.of(res, List.of(
                new AlterConfigOp(new ConfigEntry("retention.ms", "not-a-number"), AlterConfigOp.OpType.SET)
            ))).all().get()));
            out.put("alter_unknown_key_error", errorName(() -> admin.incrementalAlterConfigs(Map.of(res, List.of(
                new AlterConfigOp(new ConfigEntry("no.such.config", "1"), AlterConfigOp.OpType.SET)
            ))).all().get()));

            // Ten records in partition 0, one second apart.
            long base = System.currentTimeMillis() - 60_000;
            TopicPartition p0 = new TopicPartition(t, 0);
            try (KafkaProducer<String, String> producer = stringProducer(Map.of())) {
                for (int i = 0; i < 10; i++) {
                    producer.send(new ProducerRecord<>(t, 0, base + i * 1000L, "k" + i, "v" + i)).get();
                }
            }
            out.put("base_ts", base);
            out.put("offsets_before_delete", listOffsets(admin, p0, base));
            long low = admin.deleteRecords(Map.of(p0, RecordsToDelete.beforeOffset(4))).lowWatermarks().get(p0).get().lowWatermark();
            out.put("delete_records_low_watermark", low);
            out.put("offsets_after_delete", listOffsets(admin, p0, base));

            DescribeClusterResult cluster = admin.describeCluster();
            out.put("cluster", map("nodes", cluster.nodes().get().size(),
                "cluster_id_set", cluster.clusterId().get() != null && !cluster.clusterId().get().isEmpty(),
                "controller_set", cluster.controller().get() != null));

            admin.deleteTopics(List.of(tc)).all().get();
            out.put("listed_after_delete", admin.listTopics().names().get().contains(tc));
            out.put("describe_deleted_error", errorName(() -> admin.describeTopics(List.of(tc)).allTopicNames().get()));
        }
        return out;
    }

    Map<String, Object> configs(Admin admin, ConfigResource res, String... names) throws Exception {
        Config config = admin.describeConfigs(List.of(res)).all().get().get(res);
        Map<String, Object> out = new LinkedHashMap<>();
        for (String name : names) {
            ConfigEntry e = config.get(name);
            out.put(name, e == null ? null : map("value", e.value(), "source", e.source().name()));
        }
        return out;
    }

    Map<String, Object> listOffsets(Admin admin, TopicPartition tp, long base) throws Exception {
        Map<String, Object> out = new LinkedHashMap<>();
        Map<String, OffsetSpec> specs = new LinkedHashMap<>();
        specs.put("earliest", OffsetSpec.earliest());
        specs.put("latest", OffsetSpec.latest());
        specs.put("max_timestamp", OffsetSpec.maxTimestamp());
        specs.put("at_base_plus_3500", OffsetSpec.forTimestamp(base + 3500));
        specs.put("at_base_plus_7000", OffsetSpec.forTimestamp(base + 7000));
        specs.put("after_last", OffsetSpec.forTimestamp(base + 60_000));
        for (Map.Entry<String, OffsetSpec> s : specs.entrySet()) {
            ListOffsetsResultInfo info = admin.listOffsets(Map.of(tp, s.getValue())).partitionResult(tp).get();
            out.put(s.getKey(), map("offset", info.offset(), "timestamp", info.timestamp()));
        }
        return out;
    }

    // ------------------------------------------------------------------
    // Idempotent producer, acks=all
    // ------------------------------------------------------------------

    Map<String, Object> idempotent() throws Exception {
        String t = prefix + "-idem";
        createTopic(t, 3, Map.of());
        int n = 3000;
        int keys = 50;
        Map<String, Object> out = new LinkedHashMap<>();
        Map<String, Integer> keyPartition = new TreeMap<>();
        Set<String> keysInTwoPartitions = new TreeSet<>();
        List<Future<RecordMetadata>> sent = new ArrayList<>();
        try (KafkaProducer<String, String> producer = stringProducer(Map.of(
                ProducerConfig.ACKS_CONFIG, "all",
                ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true",
                ProducerConfig.MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION, "5",
                ProducerConfig.LINGER_MS_CONFIG, "5",
                ProducerConfig.BATCH_SIZE_CONFIG, "4096",
                ProducerConfig.COMPRESSION_TYPE_CONFIG, "zstd"))) {
            for (int i = 0; i < n; i++) {
                sent.add(producer.send(new ProducerRecord<>(t, "key-" + (i % keys), String.valueOf(i))));
            }
            producer.flush();
            for (int i = 0; i < n; i++) {
                RecordMetadata md = sent.get(i).get();
                Integer before = keyPartition.put("key-" + (i % keys), md.partition());
                if (before != null && before != md.partition()) {
                    keysInTwoPartitions.add("key-" + (i % keys));
                }
            }
        }
        out.put("sent", n);
        out.put("acked", sent.size());
        out.put("keys_in_two_partitions", new ArrayList<>(keysInTwoPartitions));
        out.put("key_partition", keyPartition);

        List<ConsumerRecord<String, String>> got = readAll(t, 3, n, "read_uncommitted");
        Map<String, List<Integer>> perKey = new HashMap<>();
        Map<Integer, Long> nextOffset = new HashMap<>();
        int gaps = 0;
        Set<String> seen = new HashSet<>();
        int duplicates = 0;
        for (ConsumerRecord<String, String> r : got) {
            if (!seen.add(r.value())) {
                duplicates++;
            }
            long expected = nextOffset.getOrDefault(r.partition(), 0L);
            if (r.offset() != expected) {
                gaps++;
            }
            nextOffset.put(r.partition(), r.offset() + 1);
            perKey.computeIfAbsent(r.key(), k -> new ArrayList<>()).add(Integer.parseInt(r.value()));
        }
        int outOfOrder = 0;
        for (List<Integer> values : perKey.values()) {
            for (int i = 1; i < values.size(); i++) {
                if (values.get(i) < values.get(i - 1)) {
                    outOfOrder++;
                }
            }
        }
        out.put("consumed", got.size());
        out.put("distinct_values", seen.size());
        out.put("duplicates", duplicates);
        out.put("offset_gaps", gaps);
        out.put("keys_out_of_order", outOfOrder);
        out.put("end_offsets", new TreeMap<>(nextOffset));
        return out;
    }

    // ------------------------------------------------------------------
    // Consumer groups
    // ------------------------------------------------------------------

    /** Records every rebalance callback, in order. */
    static final class Events implements ConsumerRebalanceListener {
        final List<Object> events = new ArrayList<>();
        final Set<Integer> owned = new TreeSet<>();

        public void onPartitionsAssigned(Collection<TopicPartition> parts) {
            events.add(List.of("assigned", partitions(parts)));
            for (TopicPartition p : parts) owned.add(p.partition());
        }

        public void onPartitionsRevoked(Collection<TopicPartition> parts) {
            events.add(List.of("revoked", partitions(parts)));
            for (TopicPartition p : parts) owned.remove(p.partition());
        }

        public void onPartitionsLost(Collection<TopicPartition> parts) {
            events.add(List.of("lost", partitions(parts)));
            for (TopicPartition p : parts) owned.remove(p.partition());
        }
    }

    KafkaConsumer<String, String> groupConsumer(String group, String assignor, String instanceId) {
        Map<String, String> conf = new HashMap<>();
        conf.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        conf.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, assignor);
        conf.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        conf.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        conf.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, "20000");
        conf.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, "500");
        if (instanceId != null) {
            conf.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, instanceId);
        }
        return stringConsumer(conf);
    }

    /** Polls every consumer in turn until `done` holds; records go to `sink`. */
    static void pollUntil(List<KafkaConsumer<String, String>> consumers, Map<KafkaConsumer<String, String>, List<ConsumerRecord<String, String>>> sink,
                          java.util.function.BooleanSupplier done, String what) {
        long deadline = System.currentTimeMillis() + WAIT_MS;
        while (!done.getAsBoolean()) {
            if (System.currentTimeMillis() > deadline) {
                throw new IllegalStateException("timed out waiting for " + what);
            }
            for (KafkaConsumer<String, String> c : consumers) {
                ConsumerRecords<String, String> recs = c.poll(Duration.ofMillis(50));
                if (!recs.isEmpty()) {
                    for (ConsumerRecord<String, String> r : recs) {
                        sink.computeIfAbsent(c, k -> new ArrayList<>()).add(r);
                    }
                    c.commitSync();
                }
            }
        }
    }

    static boolean covers(int partitions, Events... members) {
        Set<Integer> all = new TreeSet<>();
        int total = 0;
        for (Events e : members) {
            if (e.owned.isEmpty()) return false;
            all.addAll(e.owned);
            total += e.owned.size();
        }
        return all.size() == partitions && total == partitions;
    }

    static int count(Map<?, List<ConsumerRecord<String, String>>> sink) {
        int n = 0;
        for (List<ConsumerRecord<String, String>> l : sink.values()) n += l.size();
        return n;
    }

    /** Two members share a 4-partition topic, consume 40 records once, then one leaves. */
    Map<String, Object> eagerGroup(String name, String assignor) throws Exception {
        String t = prefix + "-" + name;
        String g = prefix + "-" + name + "-group";
        createTopic(t, 4, Map.of());
        Map<String, Object> out = new LinkedHashMap<>();
        Events e1 = new Events();
        Events e2 = new Events();
        Map<KafkaConsumer<String, String>, List<ConsumerRecord<String, String>>> sink = new HashMap<>();
        KafkaConsumer<String, String> c2 = groupConsumer(g, assignor, null);
        try (KafkaConsumer<String, String> c1 = groupConsumer(g, assignor, null);
             Admin admin = admin()) {
            c1.subscribe(List.of(t), e1);
            pollUntil(List.of(c1), sink, () -> e1.owned.size() == 4, "the first member to own all partitions");
            c2.subscribe(List.of(t), e2);
            pollUntil(List.of(c1, c2), sink, () -> covers(4, e1, e2), "both members to share the partitions");
            out.put("assignment_1", new ArrayList<>(e1.owned));
            out.put("assignment_2", new ArrayList<>(e2.owned));
            out.put("generation_1", c1.groupMetadata().generationId());
            out.put("generation_2", c2.groupMetadata().generationId());
            out.put("describe_stable", describeGroup(admin, g));
            produceSpread(t, 4, 10);
            pollUntil(List.of(c1, c2), sink, () -> count(sink) >= 40, "40 records");
            out.put("consumed_1", values(sink.get(c1)));
            out.put("consumed_2", values(sink.get(c2)));
            out.put("committed", committed(admin, g));
            c2.close();
            pollUntil(List.of(c1), sink, () -> e1.owned.size() == 4, "the remaining member to own all partitions");
            out.put("after_leave_1", new ArrayList<>(e1.owned));
            out.put("events_1", new ArrayList<>(e1.events));
            out.put("events_2", new ArrayList<>(e2.events));
            out.put("consumed_total", count(sink));
        } finally {
            c2.close();  // idempotent
        }
        try (Admin admin = admin()) {
            out.put("describe_empty", describeGroup(admin, g));
        }
        return out;
    }

    /** Cooperative sticky: a joining member takes partitions without the first giving up all. */
    Map<String, Object> cooperative() throws Exception {
        String t = prefix + "-coop";
        String g = prefix + "-coop-group";
        String assignor = "org.apache.kafka.clients.consumer.CooperativeStickyAssignor";
        createTopic(t, 4, Map.of());
        Map<String, Object> out = new LinkedHashMap<>();
        Events e1 = new Events();
        Events e2 = new Events();
        Map<KafkaConsumer<String, String>, List<ConsumerRecord<String, String>>> sink = new HashMap<>();
        try (KafkaConsumer<String, String> c1 = groupConsumer(g, assignor, null);
             Admin admin = admin()) {
            c1.subscribe(List.of(t), e1);
            pollUntil(List.of(c1), sink, () -> e1.owned.size() == 4, "the first member to own all partitions");
            out.put("first_alone", new ArrayList<>(e1.owned));
            try (KafkaConsumer<String, String> c2 = groupConsumer(g, assignor, null)) {
                c2.subscribe(List.of(t), e2);
                pollUntil(List.of(c1, c2), sink, () -> covers(4, e1, e2), "both members to share the partitions");
                out.put("assignment_1", new ArrayList<>(e1.owned));
                out.put("assignment_2", new ArrayList<>(e2.owned));
                out.put("describe_stable", describeGroup(admin, g));
                produceSpread(t, 4, 5);
                pollUntil(List.of(c1, c2), sink, () -> count(sink) >= 20, "20 records");
                out.put("consumed_1", values(sink.get(c1)));
                out.put("consumed_2", values(sink.get(c2)));
            }
            // c2 left: its partitions come back to c1 by an incremental assignment.
            pollUntil(List.of(c1), sink, () -> e1.owned.size() == 4, "the remaining member to own all partitions");
            out.put("committed", committed(admin, g));
            out.put("events_1", new ArrayList<>(e1.events));
            out.put("events_2", new ArrayList<>(e2.events));
            out.put("consumed_total", count(sink));
        }
        return out;
    }

    /** Static members (group.instance.id): a restart within the session timeout keeps the assignment. */
    Map<String, Object> staticMembership() throws Exception {
        String t = prefix + "-static";
        String g = prefix + "-static-group";
        String assignor = "org.apache.kafka.clients.consumer.RangeAssignor";
        String idA = prefix + "-member-a";
        String idB = prefix + "-member-b";
        createTopic(t, 4, Map.of());
        Map<String, Object> out = new LinkedHashMap<>();
        Events ea = new Events();
        Events eb = new Events();
        Events eb2 = new Events();
        Map<KafkaConsumer<String, String>, List<ConsumerRecord<String, String>>> sink = new HashMap<>();
        try (KafkaConsumer<String, String> a = groupConsumer(g, assignor, idA);
             Admin admin = admin()) {
            a.subscribe(List.of(t), ea);
            pollUntil(List.of(a), sink, () -> ea.owned.size() == 4, "member a to own all partitions");
            KafkaConsumer<String, String> b = groupConsumer(g, assignor, idB);
            b.subscribe(List.of(t), eb);
            pollUntil(List.of(a, b), sink, () -> covers(4, ea, eb), "a and b to share the partitions");
            out.put("assignment_a", new ArrayList<>(ea.owned));
            out.put("assignment_b", new ArrayList<>(eb.owned));
            int generation = a.groupMetadata().generationId();
            out.put("generation_before", generation);
            out.put("describe_both", describeGroup(admin, g));
            int eventsBefore = ea.events.size();
            // A static member's close sends no LeaveGroup: the group keeps it.
            b.close();
            out.put("describe_after_close", describeGroup(admin, g));
            KafkaConsumer<String, String> b2 = groupConsumer(g, assignor, idB);
            try {
                b2.subscribe(List.of(t), eb2);
                pollUntil(List.of(a, b2), sink, () -> !eb2.owned.isEmpty(), "b's replacement to get an assignment");
                // Give a rebalance, if the coordinator started one, time to reach a.
                long until = System.currentTimeMillis() + 1500;
                while (System.currentTimeMillis() < until) {
                    a.poll(Duration.ofMillis(50));
                    b2.poll(Duration.ofMillis(50));
                }
                out.put("assignment_b_restarted", new ArrayList<>(eb2.owned));
                out.put("assignment_a_after", new ArrayList<>(ea.owned));
                out.put("generation_after", a.groupMetadata().generationId());
                out.put("events_a_after_restart", new ArrayList<>(ea.events.subList(eventsBefore, ea.events.size())));
                out.put("describe_restarted", describeGroup(admin, g));
                // A second live consumer with b's instance id fences the first.
                try (KafkaConsumer<String, String> b3 = groupConsumer(g, assignor, idB)) {
                    Events eb3 = new Events();
                    b3.subscribe(List.of(t), eb3);
                    String fenced = null;
                    long deadline = System.currentTimeMillis() + WAIT_MS;
                    while (fenced == null && System.currentTimeMillis() < deadline) {
                        b3.poll(Duration.ofMillis(50));
                        a.poll(Duration.ofMillis(50));
                        try {
                            b2.poll(Duration.ofMillis(50));
                            b2.commitSync();
                        } catch (Exception e) {
                            fenced = e.getClass().getSimpleName();
                        }
                    }
                    out.put("duplicate_instance_error", fenced);
                    // The newest member's assignment may reach it after the old one is fenced.
                    deadline = System.currentTimeMillis() + WAIT_MS;
                    while (eb3.owned.isEmpty() && System.currentTimeMillis() < deadline) {
                        b3.poll(Duration.ofMillis(50));
                        a.poll(Duration.ofMillis(50));
                    }
                    out.put("assignment_b_newest", new ArrayList<>(eb3.owned));
                }
            } finally {
                b2.close();
            }
        }
        return out;
    }

    Map<String, Object> describeGroup(Admin admin, String g) throws Exception {
        ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(g)).all().get().get(g);
        List<Object> members = new ArrayList<>();
        for (MemberDescription m : d.members()) {
            List<Integer> parts = partitions(m.assignment().topicPartitions());
            members.add(map("instance_id", m.groupInstanceId().orElse(null), "partitions", parts));
        }
        members.sort((x, y) -> String.valueOf(x).compareTo(String.valueOf(y)));
        return map("state", d.groupState().toString(), "assignor", d.partitionAssignor(), "members", members,
            "simple", d.isSimpleConsumerGroup());
    }

    Map<String, Object> committed(Admin admin, String g) throws Exception {
        Map<TopicPartition, OffsetAndMetadata> offsets = admin.listConsumerGroupOffsets(g).partitionsToOffsetAndMetadata().get();
        Map<String, Object> out = new TreeMap<>();
        for (Map.Entry<TopicPartition, OffsetAndMetadata> e : offsets.entrySet()) {
            out.put(e.getKey().toString(), e.getValue() == null ? null : e.getValue().offset());
        }
        return out;
    }

    void produceSpread(String topic, int partitions, int perPartition) throws Exception {
        try (KafkaProducer<String, String> p = stringProducer(Map.of())) {
            for (int part = 0; part < partitions; part++) {
                for (int i = 0; i < perPartition; i++) {
                    p.send(new ProducerRecord<>(topic, part, "p" + part, part + "-" + i));
                }
            }
            p.flush();
        }
    }

    static List<String> values(List<ConsumerRecord<String, String>> records) {
        List<String> out = new ArrayList<>();
        if (records != null) {
            for (ConsumerRecord<String, String> r : records) out.add(r.value());
        }
        return out;
    }

    // ------------------------------------------------------------------
    // Transactions
    // ------------------------------------------------------------------

    Map<String, Object> transactions() throws Exception {
        String in = prefix + "-tx-in";
        String outTopic = prefix + "-tx-out";
        String g = prefix + "-tx-group";
        String txId = prefix + "-tx";
        createTopic(in, 1, Map.of());
        createTopic(outTopic, 1, Map.of());
        produceSpread(in, 1, 10);
        TopicPartition inTp = new TopicPartition(in, 0);
        TopicPartition outTp = new TopicPartition(outTopic, 0);
        Map<String, Object> out = new LinkedHashMap<>();
        Map<String, String> txConf = Map.of(ProducerConfig.TRANSACTIONAL_ID_CONFIG, txId,
            ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, "30000");
        Map<String, String> cConf = new HashMap<>();
        cConf.put(ConsumerConfig.GROUP_ID_CONFIG, g);
        cConf.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        cConf.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        cConf.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        Events events = new Events();
        try (KafkaProducer<String, String> producer = stringProducer(txConf);
             KafkaConsumer<String, String> consumer = stringConsumer(cConf);
             KafkaConsumer<String, String> committedReader = reader("read_committed");
             Admin admin = admin()) {
            producer.initTransactions();
            consumer.subscribe(List.of(in), events);
            List<ConsumerRecord<String, String>> input = new ArrayList<>();
            long deadline = System.currentTimeMillis() + WAIT_MS;
            while (input.size() < 10) {
                if (System.currentTimeMillis() > deadline) throw new IllegalStateException("input not consumed: " + input.size());
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(100))) input.add(r);
            }
            // 1: consume-transform-produce, the input offsets committed with the output.
            producer.beginTransaction();
            for (ConsumerRecord<String, String> r : input) {
                producer.send(new ProducerRecord<>(outTopic, 0, r.key(), "out-" + r.value()));
            }
            producer.sendOffsetsToTransaction(Map.of(inTp, new OffsetAndMetadata(input.get(input.size() - 1).offset() + 1)),
                consumer.groupMetadata());
            producer.commitTransaction();
            out.put("group_generation", consumer.groupMetadata().generationId());
            out.put("committed_after_commit", committed(admin, g));
            // 2: aborted.
            producer.beginTransaction();
            for (int i = 0; i < 5; i++) producer.send(new ProducerRecord<>(outTopic, 0, null, "aborted-" + i));
            producer.flush();
            producer.abortTransaction();
            // 3: open, then committed: read_committed stops at the last stable offset.
            producer.beginTransaction();
            for (int i = 0; i < 2; i++) producer.send(new ProducerRecord<>(outTopic, 0, null, "late-" + i));
            producer.flush();
            committedReader.assign(List.of(outTp));
            out.put("lso_while_open", committedReader.endOffsets(List.of(outTp)).get(outTp));
            out.put("committed_read_while_open", values(readFrom(committedReader, outTp, 0, WAIT_MS)));
            producer.commitTransaction();
            out.put("lso_after_commit", committedReader.endOffsets(List.of(outTp)).get(outTp));
        }
        try (KafkaConsumer<String, String> rc = reader("read_committed");
             KafkaConsumer<String, String> ru = reader("read_uncommitted")) {
            rc.assign(List.of(outTp));
            ru.assign(List.of(outTp));
            out.put("read_committed", values(readFrom(rc, outTp, 0, WAIT_MS)));
            out.put("read_uncommitted", values(readFrom(ru, outTp, 0, WAIT_MS)));
            out.put("log_end", ru.endOffsets(List.of(outTp)).get(outTp));
        }
        // A new producer with the same transactional.id fences the old one.
        try (KafkaProducer<String, String> old = stringProducer(txConf)) {
            old.initTransactions();
            try (KafkaProducer<String, String> fresh = stringProducer(txConf)) {
                fresh.initTransactions();
                String error = null;
                try {
                    old.beginTransaction();
                    old.send(new ProducerRecord<>(outTopic, 0, null, "zombie")).get();
                    old.commitTransaction();
                } catch (Exception e) {
                    error = (e instanceof ExecutionException ? e.getCause() : e).getClass().getSimpleName();
                }
                out.put("fenced_error", error);
                fresh.beginTransaction();
                fresh.send(new ProducerRecord<>(outTopic, 0, null, "fresh")).get();
                fresh.commitTransaction();
            }
        }
        try (KafkaConsumer<String, String> rc = reader("read_committed")) {
            rc.assign(List.of(outTp));
            List<String> vals = values(readFrom(rc, outTp, 0, WAIT_MS));
            out.put("read_committed_after_fencing", vals.subList(Math.min(12, vals.size()), vals.size()));
        }
        return out;
    }

    /** Reads from `offset` up to the end offset seen at the start; `waitMs` bounds a failure. */
    static List<ConsumerRecord<String, String>> readFrom(KafkaConsumer<String, String> c, TopicPartition tp, long offset, long waitMs) {
        c.seek(tp, offset);
        long end = c.endOffsets(List.of(tp)).get(tp);
        List<ConsumerRecord<String, String>> out = new ArrayList<>();
        long deadline = System.currentTimeMillis() + waitMs;
        while (c.position(tp) < end && System.currentTimeMillis() < deadline) {
            for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(100))) out.add(r);
        }
        return out;
    }

    // ------------------------------------------------------------------
    // Records: headers, null keys and values, timestamps, offsetsForTimes
    // ------------------------------------------------------------------

    Map<String, Object> records() throws Exception {
        String t = prefix + "-records";
        createTopic(t, 1, Map.of());
        long base = System.currentTimeMillis() - 120_000;
        byte[] binary = new byte[256];
        for (int i = 0; i < 256; i++) binary[i] = (byte) i;
        List<ProducerRecord<byte[], byte[]>> sent = new ArrayList<>();
        sent.add(new ProducerRecord<>(t, 0, base, utf8("k0"), utf8("v0"), List.<Header>of(
            new RecordHeader("h1", utf8("a")), new RecordHeader("h1", utf8("b")),
            new RecordHeader("empty", new byte[0]), new RecordHeader("null", (byte[]) null))));
        sent.add(new ProducerRecord<>(t, 0, base + 1000, (byte[]) null, utf8("no key")));
        sent.add(new ProducerRecord<>(t, 0, base + 2000, utf8("tombstone"), (byte[]) null));
        sent.add(new ProducerRecord<>(t, 0, base + 3000, (byte[]) null, (byte[]) null, List.<Header>of(new RecordHeader("only", utf8("h")))));
        sent.add(new ProducerRecord<>(t, 0, base + 4000, new byte[0], new byte[0]));
        sent.add(new ProducerRecord<>(t, 0, base + 5000, binary, binary));
        List<Object> acks = new ArrayList<>();
        Map<String, Object> pconf = new HashMap<>();
        pconf.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        pconf.put(ProducerConfig.ACKS_CONFIG, "all");
        try (KafkaProducer<byte[], byte[]> p = new KafkaProducer<>(pconf, new ByteArraySerializer(), new ByteArraySerializer())) {
            for (ProducerRecord<byte[], byte[]> r : sent) {
                RecordMetadata md = p.send(r).get();
                acks.add(map("offset", md.offset(), "timestamp", md.timestamp()));
            }
        }
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("base_ts", base);
        out.put("acks", acks);
        Map<String, Object> cconf = new HashMap<>();
        cconf.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        cconf.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        TopicPartition tp = new TopicPartition(t, 0);
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(cconf, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
            c.assign(List.of(tp));
            c.seek(tp, 0);
            List<Object> got = new ArrayList<>();
            long deadline = System.currentTimeMillis() + WAIT_MS;
            while (got.size() < sent.size() && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(100))) {
                    List<Object> headers = new ArrayList<>();
                    for (Header h : r.headers()) headers.add(java.util.Arrays.asList(h.key(), b64(h.value())));
                    got.add(map("offset", r.offset(), "key", b64(r.key()), "value", b64(r.value()),
                        "timestamp", r.timestamp(), "timestamp_type", r.timestampType().name, "headers", headers));
                }
            }
            out.put("records", got);
            Map<String, Long> queries = new LinkedHashMap<>();
            queries.put("before_first", base - 1000);
            queries.put("first", base);
            queries.put("between_1_and_2", base + 1500);
            queries.put("last", base + 5000);
            queries.put("after_last", base + 6000);
            Map<String, Object> times = new LinkedHashMap<>();
            for (Map.Entry<String, Long> q : queries.entrySet()) {
                OffsetAndTimestamp r = c.offsetsForTimes(Map.of(tp, q.getValue())).get(tp);
                times.put(q.getKey(), r == null ? null : map("offset", r.offset(), "timestamp", r.timestamp()));
            }
            out.put("offsets_for_times", times);
            out.put("beginning", c.beginningOffsets(List.of(tp)).get(tp));
            out.put("end", c.endOffsets(List.of(tp)).get(tp));
        }
        return out;
    }

    // ------------------------------------------------------------------
    // Helpers
    // ------------------------------------------------------------------

    Admin admin() {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
        return Admin.create(p);
    }

    void createTopic(String name, int partitions, Map<String, String> configs) throws Exception {
        try (Admin admin = admin()) {
            admin.createTopics(List.of(new NewTopic(name, partitions, (short) 1).configs(configs))).all().get();
        }
    }

    KafkaProducer<String, String> stringProducer(Map<String, String> extra) {
        Map<String, Object> conf = new HashMap<>();
        conf.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        conf.put(ProducerConfig.ACKS_CONFIG, "all");
        conf.putAll(extra);
        return new KafkaProducer<>(conf, new StringSerializer(), new StringSerializer());
    }

    KafkaConsumer<String, String> stringConsumer(Map<String, String> extra) {
        Map<String, Object> conf = new HashMap<>();
        conf.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        conf.putAll(extra);
        return new KafkaConsumer<>(conf, new StringDeserializer(), new StringDeserializer());
    }

    KafkaConsumer<String, String> reader(String isolation) {
        return stringConsumer(Map.of(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation,
            ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false"));
    }

    List<ConsumerRecord<String, String>> readAll(String topic, int partitions, int expected, String isolation) {
        List<ConsumerRecord<String, String>> out = new ArrayList<>();
        try (KafkaConsumer<String, String> c = reader(isolation)) {
            List<TopicPartition> tps = new ArrayList<>();
            for (int i = 0; i < partitions; i++) tps.add(new TopicPartition(topic, i));
            c.assign(tps);
            c.seekToBeginning(tps);
            long deadline = System.currentTimeMillis() + WAIT_MS;
            while (out.size() < expected && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(100))) out.add(r);
            }
        }
        return out;
    }

    interface Call {
        void run() throws Exception;
    }

    /** The simple class name of what the call threw (its cause, for futures), or null. */
    static String errorName(Call call) {
        try {
            call.run();
            return null;
        } catch (ExecutionException e) {
            return e.getCause().getClass().getSimpleName();
        } catch (Exception e) {
            return e.getClass().getSimpleName();
        }
    }

    static String describe(Throwable e) {
        StringBuilder sb = new StringBuilder();
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (sb.length() > 0) sb.append(" <- caused by ");
            sb.append(t.getClass().getName()).append(": ").append(t.getMessage());
        }
        java.io.StringWriter w = new java.io.StringWriter();
        e.printStackTrace(new java.io.PrintWriter(w));
        return sb + "\n" + w;
    }

    static List<Integer> partitions(Collection<TopicPartition> parts) {
        List<Integer> out = new ArrayList<>();
        for (TopicPartition p : parts) out.add(p.partition());
        out.sort(null);
        return out;
    }

    static Map<String, Object> map(Object... kv) {
        Map<String, Object> m = new LinkedHashMap<>();
        for (int i = 0; i < kv.length; i += 2) m.put((String) kv[i], kv[i + 1]);
        return m;
    }

    static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    static String b64(byte[] b) {
        return b == null ? null : Base64.getEncoder().encodeToString(b);
    }

    /** Just enough JSON for the results: maps, lists, strings, numbers, booleans, null. */
    static final class Json {
        static String write(Object o) {
            StringBuilder sb = new StringBuilder();
            write(sb, o);
            return sb.toString();
        }

        static void write(StringBuilder sb, Object o) {
            if (o == null) {
                sb.append("null");
            } else if (o instanceof String) {
                string(sb, (String) o);
            } else if (o instanceof Number || o instanceof Boolean) {
                sb.append(o);
            } else if (o instanceof Map) {
                sb.append('{');
                boolean first = true;
                for (Map.Entry<?, ?> e : ((Map<?, ?>) o).entrySet()) {
                    if (!first) sb.append(',');
                    first = false;
                    string(sb, String.valueOf(e.getKey()));
                    sb.append(':');
                    write(sb, e.getValue());
                }
                sb.append('}');
            } else if (o instanceof Collection) {
                sb.append('[');
                boolean first = true;
                for (Object x : (Collection<?>) o) {
                    if (!first) sb.append(',');
                    first = false;
                    write(sb, x);
                }
                sb.append(']');
            } else {
                string(sb, o.toString());
            }
        }

        static void string(StringBuilder sb, String s) {
            sb.append('"');
            for (int i = 0; i < s.length(); i++) {
                char ch = s.charAt(i);
                switch (ch) {
                    case '"': sb.append("\\\""); break;
                    case '\\': sb.append("\\\\"); break;
                    case '\n': sb.append("\\n"); break;
                    case '\r': sb.append("\\r"); break;
                    case '\t': sb.append("\\t"); break;
                    default:
                        if (ch < 0x20) sb.append(String.format("\\u%04x", (int) ch));
                        else sb.append(ch);
                }
            }
            sb.append('"');
        }
    }
}
