# runstream/java for hosts that can pull official images (see docs/sandbox.md).
FROM eclipse-temurin:17-jdk
# languages.toml calls tools by absolute /usr/bin paths.
RUN set -e \
    && ln -sf /opt/java/openjdk/bin/java /usr/bin/java \
    && ln -sf /opt/java/openjdk/bin/javac /usr/bin/javac \
    && ln -sf /opt/java/openjdk/conf /etc/java-17-openjdk
RUN mkdir -p /box
WORKDIR /box
ENV LANG=C.UTF-8
