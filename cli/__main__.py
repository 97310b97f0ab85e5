from agent_session_manager.cli.app import main

main()
