package dev.pgentra.interop;

import org.springframework.boot.CommandLineRunner;
import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.jdbc.core.JdbcTemplate;

/**
 * The seed's Spring Boot tab: no code of its own beyond a Spring Boot application with Spring
 * Cloud Azure's JDBC PostgreSQL starter; Service Connector's {@code spring.datasource.url},
 * {@code spring.datasource.username} and {@code spring.datasource.azure.passwordless-enabled}
 * (plus {@code spring.cloud.azure.credential.*} for a user-assigned identity) arrive as
 * environment variables, exactly as Service Connector sets them for Azure Spring Apps.
 * Prints current_user through the auto-configured DataSource; any failure exits non-zero.
 */
@SpringBootApplication
public class SpringBootSeed implements CommandLineRunner {
    private final JdbcTemplate jdbc;

    public SpringBootSeed(JdbcTemplate jdbc) {
        this.jdbc = jdbc;
    }

    public static void main(String[] args) {
        int code = SpringApplication.exit(SpringApplication.run(SpringBootSeed.class, args));
        System.exit(code);
    }

    @Override
    public void run(String... args) {
        System.out.println(jdbc.queryForObject("select current_user", String.class));
    }
}
