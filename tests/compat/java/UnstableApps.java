import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.math.BigDecimal;
import java.math.MathContext;
import java.math.RoundingMode;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.kstream.Windowed;
import org.apache.kafka.streams.kstream.WindowedSerdes;
import org.apache.kafka.streams.state.BuiltInDslStoreSuppliers;
import org.apache.kafka.streams.state.WindowStore;

/**
 * The talk's slide-8 topology (crates/runnel-streams/src/talk.rs) written
 * against Kafka Streams: apps opened and app crashes counted per app and
 * 1-day tumbling window, the two windowed counts joined, filtered by the
 * crash ratio, written to three topics.
 *
 * The output bytes are meant to equal what runnel-streams writes: keys are
 * Kafka Streams' time-windowed layout (the app id's UTF-8 bytes, then the
 * window start as an 8-byte big-endian long), values the JSON objects
 * {"OPENS":n}, {"CRASHES":n} and {"OPENS":o,"CRASHES":c,"RATIO":r}, with r
 * printed as the shortest decimal that reads back as the same double (what
 * serde_json prints), tombstones as null values.
 *
 * Usage: UnstableApps BOOTSTRAP APPLICATION_ID STATE_DIR OUTPUT_PREFIX THRESHOLD GRACE_SECS [KEY=VALUE...]
 * The KEY=VALUE arguments are StreamsConfig properties that override this
 * class's settings (exactly_once_v2, in-memory stores, earliest), e.g.
 * processing.guarantee=at_least_once commit.interval.ms=1000 for
 * scripts/peer_bench.py. Reads apps_opened and app_crashes; writes OUTPUT_PREFIX + opened_per_day,
 * crashed_per_day and unstable_apps (which must exist). Prints "state S"
 * on each state change; runs until a line "stop" (or the end) on stdin,
 * then closes and exits 0, or 1 when the application failed.
 */
public final class UnstableApps {
    static final long DAY_MS = 86_400_000L;

    record Row(long opens, long crashes, double ratio) {
        String json() {
            return "{\"OPENS\":" + opens + ",\"CRASHES\":" + crashes + ",\"RATIO\":" + shortest(ratio) + "}";
        }
    }

    /**
     * The fewest significant digits that parse back to d, in plain
     * notation with at least one fractional digit. Rounding the exact
     * binary value picks, among the shortest candidates, the nearest one.
     * Only for the range the ratio takes here (no exponent notation).
     */
    static String shortest(double d) {
        BigDecimal exact = new BigDecimal(d);
        for (int digits = 1; digits <= 17; digits++) {
            BigDecimal b = exact.round(new MathContext(digits, RoundingMode.HALF_EVEN));
            if (b.doubleValue() == d) {
                String s = b.stripTrailingZeros().toPlainString();
                return s.contains(".") ? s : s + ".0";
            }
        }
        throw new IllegalStateException("no decimal reads back as " + d);
    }

    public static void main(String[] args) throws IOException, InterruptedException {
        if (args.length < 6) {
            System.err.println("usage: UnstableApps BOOTSTRAP APPLICATION_ID STATE_DIR OUTPUT_PREFIX THRESHOLD GRACE_SECS [KEY=VALUE...]");
            System.exit(2);
        }
        String prefix = args[3];
        double threshold = Double.parseDouble(args[4]);
        Duration grace = Duration.ofSeconds(Long.parseLong(args[5]));

        Properties props = new Properties();
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, args[1]);
        props.put(StreamsConfig.STATE_DIR_CONFIG, args[2]);
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        // The same kind of stores as runnel-streams' default: in memory,
        // restored from their changelog topics.
        props.put(StreamsConfig.DSL_STORE_SUPPLIERS_CLASS_CONFIG,
                BuiltInDslStoreSuppliers.InMemoryDslStoreSuppliers.class);
        props.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
        for (int i = 6; i < args.length; i++) {
            int eq = args[i].indexOf('=');
            if (eq <= 0) {
                System.err.println("not a KEY=VALUE property: " + args[i]);
                System.exit(2);
            }
            props.put(args[i].substring(0, eq), args[i].substring(eq + 1));
        }
        System.out.println("config " + props);
        System.out.flush();

        Serde<Windowed<String>> windowedKey = WindowedSerdes.timeWindowedSerdeFrom(String.class, DAY_MS);
        TimeWindows windows = TimeWindows.ofSizeAndGrace(Duration.ofMillis(DAY_MS), grace);

        StreamsBuilder b = new StreamsBuilder();
        KTable<Windowed<String>, Long> opened = b
                .stream("apps_opened", Consumed.with(Serdes.String(), Serdes.ByteArray()))
                .groupByKey(Grouped.with(Serdes.String(), Serdes.ByteArray()))
                .windowedBy(windows)
                .count(Materialized.<String, Long, WindowStore<Bytes, byte[]>>as("opened_per_day_store")
                        .withKeySerde(Serdes.String()).withValueSerde(Serdes.Long()));
        KTable<Windowed<String>, Long> crashed = b
                .stream("app_crashes", Consumed.with(Serdes.String(), Serdes.ByteArray()))
                .groupByKey(Grouped.with(Serdes.String(), Serdes.ByteArray()))
                .windowedBy(windows)
                .count(Materialized.<String, Long, WindowStore<Bytes, byte[]>>as("crashed_per_day_store")
                        .withKeySerde(Serdes.String()).withValueSerde(Serdes.Long()));
        opened.mapValues(n -> "{\"OPENS\":" + n + "}")
                .toStream()
                .to(prefix + "opened_per_day", Produced.with(windowedKey, Serdes.String()));
        crashed.mapValues(n -> "{\"CRASHES\":" + n + "}")
                .toStream()
                .to(prefix + "crashed_per_day", Produced.with(windowedKey, Serdes.String()));
        opened.join(crashed, (o, c) -> new Row(o, c, (double) c / Math.max(o, 1L)))
                .filter((k, row) -> row.ratio() > threshold)
                .mapValues(Row::json)
                .toStream()
                .to(prefix + "unstable_apps", Produced.with(windowedKey, Serdes.String()));

        AtomicReference<Throwable> failure = new AtomicReference<>();
        KafkaStreams streams = new KafkaStreams(b.build(), props);
        streams.setStateListener((now, before) -> {
            System.out.println("state " + now);
            System.out.flush();
        });
        streams.setUncaughtExceptionHandler(e -> {
            failure.compareAndSet(null, e);
            e.printStackTrace();
            return StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        streams.start();

        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null && !line.trim().equals("stop")) {
            // only "stop" means anything
        }
        boolean closed = streams.close(Duration.ofSeconds(30));
        System.out.println(closed ? "closed" : "close timed out");
        System.out.flush();
        System.exit(closed && failure.get() == null ? 0 : 1);
    }
}
