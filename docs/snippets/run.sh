signing-proxy run                            # demo by default; --env production for real money
