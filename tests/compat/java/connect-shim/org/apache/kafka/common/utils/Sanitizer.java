package org.apache.kafka.common.utils;

/**
 * Debezium 3.6.1.Final's metrics call {@code Sanitizer.jmxSanitize} in
 * this package, where kafka-clients kept the class until it moved to
 * {@code org.apache.kafka.common.utils.internals} (Kafka 4.4.0 has it only
 * there): without this bridge every Debezium task fails to start with
 * NoClassDefFoundError. The reference worker (connect_reference.py) puts
 * it on its class path, which plugins share for org.apache.kafka classes.
 */
public final class Sanitizer {
    private Sanitizer() {
    }

    public static String sanitize(String name) {
        return org.apache.kafka.common.utils.internals.Sanitizer.sanitize(name);
    }

    public static String desanitize(String name) {
        return org.apache.kafka.common.utils.internals.Sanitizer.desanitize(name);
    }

    public static String jmxSanitize(String name) {
        return org.apache.kafka.common.utils.internals.Sanitizer.jmxSanitize(name);
    }
}
