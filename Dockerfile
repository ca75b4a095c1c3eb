FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY ups_server ups_server
COPY migrations migrations
COPY rules rules
RUN pip install --no-cache-dir .
EXPOSE 8080 11112
ENV UPS_HOST=0.0.0.0 UPS_DATA_DIR=/data
VOLUME /data
CMD ["ups-server", "serve"]
