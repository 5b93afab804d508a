// Starts DynamoDB Local listening on 127.0.0.1 only. Its command line has no bind-address option
// and its Jetty server listens on every interface, so this launcher builds the server the way
// DynamoDBLocal.jar's own main does (same arguments), points each connector at the loopback
// address, and then starts it.
import java.lang.reflect.Field;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import software.amazon.dynamodb.services.local.main.ServerRunner;
import software.amazon.dynamodb.services.local.server.DynamoDBProxyServer;

public final class DynamoDbLocalLoopback {
    public static void main(String[] args) throws Exception {
        DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(args);
        Field serverField = DynamoDBProxyServer.class.getDeclaredField("server");
        serverField.setAccessible(true);
        Server server = (Server) serverField.get(proxy);
        int bound = 0;
        for (Connector connector : server.getConnectors()) {
            if (connector instanceof ServerConnector serverConnector) {
                serverConnector.setHost("127.0.0.1");
                bound++;
            }
        }
        if (bound == 0) {
            throw new IllegalStateException("DynamoDB Local has no connector to bind to 127.0.0.1");
        }
        proxy.start();
        proxy.join();
    }
}
