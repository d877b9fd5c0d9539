import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.Future;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Waits until a Kafka cluster is really usable, not merely listening:
 * every expected broker is in the metadata, a topic replicated to all of
 * them exists with a leader and a full ISR on every partition, and a
 * record produced with acks=all to each partition is acknowledged.
 *
 * Usage: KafkaReady BOOTSTRAP BROKERS TIMEOUT_MS
 * Exit 0 and "ready: ..." on stdout, or exit 1 with the reason on stderr.
 * Used by scripts/kafka.sh (tests/compat/kafka_cluster.py) after start and
 * after a node restart.
 */
public final class KafkaReady {
    static final String TOPIC = "__runnel_fixture_ready";

    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: KafkaReady BOOTSTRAP BROKERS TIMEOUT_MS");
            System.exit(2);
        }
        String bootstrap = args[0];
        int brokers = Integer.parseInt(args[1]);
        long deadline = System.currentTimeMillis() + Long.parseLong(args[2]);
        String last = "nothing tried yet";
        Properties common = new Properties();
        common.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        common.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "5000");
        common.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "10000");
        common.put(AdminClientConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, "200");
        try (Admin admin = Admin.create(common)) {
            // 1. Every broker registered and unfenced.
            while (true) {
                try {
                    Collection<Node> nodes = admin.describeCluster().nodes().get(5, TimeUnit.SECONDS);
                    if (nodes.size() == brokers) {
                        break;
                    }
                    last = "metadata lists " + nodes.size() + " of " + brokers + " brokers: " + nodes;
                } catch (ExecutionException | java.util.concurrent.TimeoutException e) {
                    last = "describeCluster: " + e;
                }
                pause(deadline, last);
            }
            // 2. A topic on every broker, each partition led and fully in sync.
            while (true) {
                try {
                    admin.createTopics(List.of(new NewTopic(TOPIC, brokers, (short) brokers)))
                        .all().get(10, TimeUnit.SECONDS);
                } catch (ExecutionException e) {
                    if (!(e.getCause() instanceof TopicExistsException)) {
                        last = "createTopics: " + e.getCause();
                        pause(deadline, last);
                        continue;
                    }
                }
                try {
                    TopicDescription d = admin.describeTopics(List.of(TOPIC)).allTopicNames()
                        .get(5, TimeUnit.SECONDS).get(TOPIC);
                    String problem = null;
                    for (TopicPartitionInfo p : d.partitions()) {
                        if (p.leader() == null || p.leader().isEmpty() || p.isr().size() != brokers) {
                            problem = "partition " + p.partition() + " leader " + p.leader() + " isr " + p.isr();
                        }
                    }
                    if (d.partitions().size() != brokers) {
                        problem = "topic has " + d.partitions().size() + " partitions";
                    }
                    if (problem == null) {
                        break;
                    }
                    last = problem;
                } catch (ExecutionException e) {
                    last = "describeTopics: " + e.getCause();
                }
                pause(deadline, last);
            }
        }
        // 3. A write acknowledged by all in-sync replicas of every partition.
        Properties pp = new Properties();
        pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        pp.put(ProducerConfig.ACKS_CONFIG, "all");
        pp.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG,
            String.valueOf(Math.max(5000, deadline - System.currentTimeMillis())));
        pp.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "4000");
        pp.put(ProducerConfig.LINGER_MS_CONFIG, "0");
        pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        Set<Integer> acked = new TreeSet<>();
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(pp)) {
            List<Future<RecordMetadata>> sent = new ArrayList<>();
            for (int p = 0; p < brokers; p++) {
                sent.add(producer.send(new ProducerRecord<>(TOPIC, p, "ready", String.valueOf(System.currentTimeMillis()))));
            }
            for (Future<RecordMetadata> f : sent) {
                try {
                    acked.add(f.get().partition());
                } catch (ExecutionException e) {
                    fail("produce to " + TOPIC + " failed: " + e.getCause());
                }
            }
        }
        System.out.println("ready: " + brokers + " brokers, acks=all writes to partitions " + acked);
    }

    static void pause(long deadline, String last) throws InterruptedException {
        if (System.currentTimeMillis() > deadline) {
            fail("not ready before the deadline; last: " + last);
        }
        Thread.sleep(200);
    }

    static void fail(String why) {
        System.err.println("KafkaReady: " + why);
        System.exit(1);
    }
}
