import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Properties;
import java.util.TreeSet;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * One member of a consumer group of the KIP-848 protocol
 * (`group.protocol=consumer`), for tests that do things to the broker under
 * it (test_kip848.py restarts it). Usage: GroupMember BOOTSTRAP GROUP TOPIC.
 *
 * It reads the topic from the beginning, commits synchronously after every
 * poll that returned records, and prints one JSON line per event, flushed:
 *
 * - {"event":"assigned"|"revoked"|"lost","partitions":[...],"epoch":E}
 *   from its rebalance listener (E: the member epoch the consumer holds,
 *   its group metadata's generation id);
 * - {"event":"read","count":N,"epoch":E} after each poll with records (N:
 *   records read so far);
 * - {"event":"error","error":"..."} if a poll or commit throws (then it
 *   goes on polling).
 *
 * It runs until killed.
 */
public class GroupMember {
    public static void main(String[] args) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        p.put(ConsumerConfig.GROUP_ID_CONFIG, args[1]);
        p.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "consumer");
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.CLIENT_ID_CONFIG, "group-member");
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(p)) {
            c.subscribe(List.of(args[2]), new ConsumerRebalanceListener() {
                @Override
                public void onPartitionsAssigned(Collection<TopicPartition> parts) {
                    event("assigned", parts, c);
                }

                @Override
                public void onPartitionsRevoked(Collection<TopicPartition> parts) {
                    if (!parts.isEmpty()) {
                        event("revoked", parts, c);
                    }
                }

                @Override
                public void onPartitionsLost(Collection<TopicPartition> parts) {
                    event("lost", parts, c);
                }
            });
            long count = 0;
            while (true) {
                try {
                    ConsumerRecords<String, String> records = c.poll(Duration.ofMillis(200));
                    if (records.isEmpty()) {
                        continue;
                    }
                    for (ConsumerRecord<String, String> r : records) {
                        count++;
                    }
                    c.commitSync(Duration.ofSeconds(30));
                    print("{\"event\":\"read\",\"count\":" + count + ",\"epoch\":" + epoch(c) + "}");
                } catch (RuntimeException e) {
                    String msg = String.valueOf(e).replace("\\", "\\\\").replace("\"", "'");
                    print("{\"event\":\"error\",\"error\":\"" + msg + "\"}");
                }
            }
        }
    }

    static int epoch(KafkaConsumer<String, String> c) {
        return c.groupMetadata().generationId();
    }

    static void event(String what, Collection<TopicPartition> parts, KafkaConsumer<String, String> c) {
        TreeSet<Integer> ps = new TreeSet<>();
        for (TopicPartition tp : parts) {
            ps.add(tp.partition());
        }
        print("{\"event\":\"" + what + "\",\"partitions\":" + ps.toString().replace(" ", "")
              + ",\"epoch\":" + epoch(c) + "}");
    }

    static void print(String line) {
        System.out.println(line);
        System.out.flush();
    }
}
